//! A tiny protobuf writer for tests: builds messages field by field, the way Go's generated marshallers do.

/// A message under construction.
#[derive(Debug, Default, Clone)]
pub struct Msg(Vec<u8>);

impl Msg {
    pub fn new() -> Self {
        Self::default()
    }

    fn key(mut self, tag: u32, wire_type: u8) -> Self {
        put_varint(&mut self.0, (u64::from(tag) << 3) | u64::from(wire_type));
        self
    }

    pub fn varint(self, tag: u32, value: u64) -> Self {
        let mut m = self.key(tag, 0);
        put_varint(&mut m.0, value);
        m
    }

    /// A signed integer as Go writes int32/int64 (two's complement, sign-extended to 64 bits).
    pub fn int(self, tag: u32, value: i64) -> Self {
        self.varint(tag, value as u64)
    }

    pub fn bool(self, tag: u32, value: bool) -> Self {
        self.varint(tag, u64::from(value))
    }

    pub fn bytes(self, tag: u32, value: &[u8]) -> Self {
        let mut m = self.key(tag, 2);
        put_varint(&mut m.0, value.len() as u64);
        m.0.extend_from_slice(value);
        m
    }

    pub fn string(self, tag: u32, value: &str) -> Self {
        self.bytes(tag, value.as_bytes())
    }

    pub fn msg(self, tag: u32, value: Msg) -> Self {
        self.bytes(tag, &value.0)
    }

    /// One `map<string, string>` entry.
    pub fn map_str(self, tag: u32, key: &str, value: &str) -> Self {
        self.msg(tag, Msg::new().string(1, key).string(2, value))
    }

    /// One `map<string, message>` entry.
    pub fn map_msg(self, tag: u32, key: &str, value: Msg) -> Self {
        self.msg(tag, Msg::new().string(1, key).msg(2, value))
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A full request body: magic, then `runtime.Unknown{typeMeta, raw, contentEncoding: "", contentType: ""}`.
pub fn body(api_version: &str, kind: &str, object: Msg) -> Vec<u8> {
    let unknown =
        Msg::new().msg(1, Msg::new().string(1, api_version).string(2, kind)).msg(2, object).string(3, "").string(4, "");
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.into_bytes());
    out
}

/// `ObjectMeta` as Go writes it: every non-pointer field present, even when empty.
pub fn object_meta(name: &str, namespace: &str) -> Msg {
    Msg::new()
        .string(1, name)
        .string(2, "")
        .string(3, namespace)
        .string(4, "")
        .string(5, "")
        .string(6, "")
        .int(7, 0)
        .msg(8, Msg::new())
}
