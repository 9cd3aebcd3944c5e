//! A minimal protobuf wire-format reader: varints, fixed 32/64-bit values and length-delimited records.
//!
//! Knows nothing about Kubernetes or schemas. Malformed input is reported as an error, never a panic.

use super::error::ProtobufError;

/// The wire type carried in the low three bits of a field key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    Varint,
    Fixed64,
    LengthDelimited,
    Fixed32,
}

impl WireType {
    pub fn name(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "64-bit",
            WireType::LengthDelimited => "length-delimited",
            WireType::Fixed32 => "32-bit",
        }
    }
}

/// One decoded field value, borrowing length-delimited payloads from the input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    pub fn wire_type(&self) -> WireType {
        match self {
            WireValue::Varint(_) => WireType::Varint,
            WireValue::Fixed64(_) => WireType::Fixed64,
            WireValue::Bytes(_) => WireType::LengthDelimited,
            WireValue::Fixed32(_) => WireType::Fixed32,
        }
    }
}

/// Reads the fields of one message in order.
pub struct WireReader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` within the whole body, so errors point at the right byte.
    base: usize,
}

impl<'a> WireReader<'a> {
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// Absolute offset of the next unread byte.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// The next `(field number, value)`, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, ProtobufError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key_offset = self.offset();
        let key = self.read_varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| ProtobufError::BadFieldNumber { offset: key_offset })?;
        if field == 0 {
            return Err(ProtobufError::BadFieldNumber { offset: key_offset });
        }
        let value = match key & 7 {
            0 => WireValue::Varint(self.read_varint()?),
            1 => WireValue::Fixed64(u64::from_le_bytes(self.read_array::<8>()?)),
            2 => {
                let len_offset = self.offset();
                let len = usize::try_from(self.read_varint()?)
                    .map_err(|_| ProtobufError::Truncated { offset: len_offset })?;
                WireValue::Bytes(self.read_slice(len)?)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(self.read_array::<4>()?)),
            other => return Err(ProtobufError::BadWireType { wire_type: other, offset: key_offset }),
        };
        Ok(Some((field, value)))
    }

    /// Reads a base-128 varint of at most ten bytes.
    pub fn read_varint(&mut self) -> Result<u64, ProtobufError> {
        let start = self.offset();
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = *self.buf.get(self.pos).ok_or(ProtobufError::Truncated { offset: self.offset() })?;
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(ProtobufError::BadVarint { offset: start });
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::BadVarint { offset: start })
    }

    /// Reads a little-endian 64-bit value (an element of a packed `double` list).
    pub fn read_fixed64(&mut self) -> Result<u64, ProtobufError> {
        self.read_array::<8>().map(u64::from_le_bytes)
    }

    fn read_slice(&mut self, len: usize) -> Result<&'a [u8], ProtobufError> {
        let end = self.pos.checked_add(len).filter(|end| *end <= self.buf.len());
        let end = end.ok_or(ProtobufError::Truncated { offset: self.offset() })?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N], ProtobufError> {
        let slice = self.read_slice(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_wire_type() {
        // field 1 varint 300, field 2 fixed64 1, field 3 bytes "hi", field 4 fixed32 7
        let buf = [0x08, 0xac, 0x02, 0x11, 1, 0, 0, 0, 0, 0, 0, 0, 0x1a, 2, b'h', b'i', 0x25, 7, 0, 0, 0];
        let mut r = WireReader::new(&buf, 0);
        assert_eq!(r.next_field(), Ok(Some((1, WireValue::Varint(300)))));
        assert_eq!(r.next_field(), Ok(Some((2, WireValue::Fixed64(1)))));
        assert_eq!(r.next_field(), Ok(Some((3, WireValue::Bytes(b"hi")))));
        assert_eq!(r.next_field(), Ok(Some((4, WireValue::Fixed32(7)))));
        assert_eq!(r.next_field(), Ok(None));
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(WireReader::new(&[0x08], 4).next_field(), Err(ProtobufError::Truncated { offset: 5 }));
        assert_eq!(WireReader::new(&[0x0a, 5, 1], 0).next_field(), Err(ProtobufError::Truncated { offset: 2 }));
        assert_eq!(
            WireReader::new(&[0x0b], 0).next_field(),
            Err(ProtobufError::BadWireType { wire_type: 3, offset: 0 })
        );
        assert_eq!(WireReader::new(&[0x00, 0], 0).next_field(), Err(ProtobufError::BadFieldNumber { offset: 0 }));
        let too_long = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(WireReader::new(&too_long, 0).next_field(), Err(ProtobufError::BadVarint { offset: 1 }));
        let huge_len = [0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(WireReader::new(&huge_len, 0).next_field().is_err());
    }
}
