//! Minimal DER reading and writing, enough to edit rcgen's output (see `finish_certificate`).

pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
pub const BIT_STRING: u8 = 0x03;
pub const OID: u8 = 0x06;
pub const UTF8_STRING: u8 = 0x0c;
/// `[0] EXPLICIT`, the version field of a TBSCertificate.
pub const VERSION_TAG: u8 = 0xa0;

/// One DER element.
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    /// Tag, length and content.
    pub whole: &'a [u8],
}

/// Splits the first element off `input`, returning it and the rest. Single-byte tags only.
pub fn split(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let len = input.get(2..2 + count)?.iter().fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (len, 2 + count)
    };
    let end = header.checked_add(len)?;
    let tlv = input.get(..end)?;
    Some((Tlv { tag, content: &tlv[header..], whole: tlv }, &input[end..]))
}

/// Encodes one TLV with a definite length.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        let len = content.len().to_be_bytes();
        let skip = len.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (len.len() - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A Name with one single-attribute RDN per `(attribute OID, UTF-8 value)`, in order.
pub fn name(attributes: &[(&[u8], &str)]) -> Vec<u8> {
    let rdns: Vec<u8> = attributes
        .iter()
        .flat_map(|(oid, value)| {
            let attribute = [tlv(OID, oid), tlv(UTF8_STRING, value.as_bytes())].concat();
            tlv(SET, &tlv(SEQUENCE, &attribute))
        })
        .collect();
    tlv(SEQUENCE, &rdns)
}
