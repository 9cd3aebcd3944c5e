//! The part of SPDY/3.1 framing that a remote-command client needs, as pure encode/parse functions:
//! the runtime's streaming server (containerd 1.6's, built on Go's spdystream) speaks
//! `v4.channel.k8s.io` over SPDY with one stream per channel (`streamtype: error|stdin|stdout|
//! stderr|resize`). Unlike v4 over websockets, SPDY can half-close a stream (a DATA frame with FIN),
//! which is how stdin EOF reaches the command.
//!
//! Header blocks must be zlib streams (one per connection and direction). This client never compresses:
//! it writes a zlib header once and then each block as a deflate *stored* block, which any inflater
//! reads, so no dictionary or compressor is needed. The server's header blocks (in SYN_REPLY) are
//! never decoded: nothing in them matters here. spdystream implements no flow control, so
//! WINDOW_UPDATE is neither sent nor honoured.

use bytes::{Buf, BytesMut};

const VERSION: u16 = 3;
const CONTROL_BIT: u8 = 0x80;
const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
/// FLAG_FIN on DATA frames (and control frames).
pub const FLAG_FIN: u8 = 0x01;
const HEADER_LEN: usize = 8;
/// Largest frame accepted from the server (the 24-bit length allows 16 MiB; spdystream writes less).
pub const MAX_FRAME: usize = 1 << 24;
/// The zlib stream header for "deflate, 32 KiB window, no dictionary, fastest": `(0x78 << 8 | 0x01) % 31 == 0`.
const ZLIB_HEADER: [u8; 2] = [0x78, 0x01];
/// An empty non-final stored block, what zlib's `Z_SYNC_FLUSH` writes.
const SYNC_FLUSH: [u8; 5] = [0x00, 0x00, 0x00, 0xff, 0xff];

/// Why bytes from the server are not SPDY/3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpdyError {
    #[error("spdy control frame of version {0}, expected 3")]
    Version(u16),
    #[error("spdy frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("spdy {kind} frame too short ({len} bytes)")]
    Short { kind: &'static str, len: usize },
}

/// A frame from the server, reduced to what the client acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The server accepted stream `stream`.
    SynReply {
        stream: u32,
        fin: bool,
    },
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    /// Pings must be echoed.
    Ping {
        id: u32,
    },
    GoAway,
    /// SETTINGS, WINDOW_UPDATE, HEADERS, or a SYN_STREAM a client never expects: ignored.
    Other {
        kind: u16,
    },
}

/// Takes one complete frame off the front of `buf`, `None` while more bytes are needed.
pub fn parse_frame(buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = usize::from(buf[5]) << 16 | usize::from(buf[6]) << 8 | usize::from(buf[7]);
    if len > MAX_FRAME {
        return Err(SpdyError::TooLarge(len));
    }
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    let control = buf[0] & CONTROL_BIT != 0;
    let flags = buf[4];
    let word0 = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    buf.advance(HEADER_LEN);
    let payload = buf.split_to(len);
    if !control {
        return Ok(Some(Frame::Data {
            stream: word0 & 0x7fff_ffff,
            fin: flags & FLAG_FIN != 0,
            data: payload.to_vec(),
        }));
    }
    let version = ((word0 >> 16) & 0x7fff) as u16;
    if version != VERSION {
        return Err(SpdyError::Version(version));
    }
    let kind = (word0 & 0xffff) as u16;
    let u32_at = |kind_name: &'static str, at: usize| -> Result<u32, SpdyError> {
        payload
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(SpdyError::Short { kind: kind_name, len })
    };
    Ok(Some(match kind {
        TYPE_SYN_REPLY => Frame::SynReply { stream: u32_at("SYN_REPLY", 0)? & 0x7fff_ffff, fin: flags & FLAG_FIN != 0 },
        TYPE_RST_STREAM => {
            Frame::RstStream { stream: u32_at("RST_STREAM", 0)? & 0x7fff_ffff, status: u32_at("RST_STREAM", 4)? }
        }
        TYPE_PING => Frame::Ping { id: u32_at("PING", 0)? },
        TYPE_GOAWAY => Frame::GoAway,
        other => Frame::Other { kind: other },
    }))
}

fn control_frame(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

/// A DATA frame on `stream`; `fin` half-closes the stream after `data`.
pub fn data_frame(stream: u32, fin: bool, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + data.len());
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.push(if fin { FLAG_FIN } else { 0 });
    out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(data);
    out
}

/// The answer to a server's PING.
pub fn ping_frame(id: u32) -> Vec<u8> {
    control_frame(TYPE_PING, 0, &id.to_be_bytes())
}

/// Writes SYN_STREAM frames, keeping the connection's header compression state (only whether the
/// zlib header was sent: blocks are stored, not compressed).
#[derive(Debug, Default)]
pub struct StreamOpener {
    zlib_started: bool,
}

impl StreamOpener {
    /// A SYN_STREAM opening `stream` with `headers` (names must be lowercase, as SPDY requires).
    pub fn syn_stream(&mut self, stream: u32, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        block.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            block.extend_from_slice(&(name.len() as u32).to_be_bytes());
            block.extend_from_slice(name.to_ascii_lowercase().as_bytes());
            block.extend_from_slice(&(value.len() as u32).to_be_bytes());
            block.extend_from_slice(value.as_bytes());
        }
        let mut payload = Vec::with_capacity(10 + block.len() + 8);
        payload.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        payload.extend_from_slice(&0u32.to_be_bytes()); // associated stream
        payload.extend_from_slice(&[0, 0]); // priority 0, slot 0
        if !self.zlib_started {
            payload.extend_from_slice(&ZLIB_HEADER);
            self.zlib_started = true;
        }
        payload.extend_from_slice(&stored_blocks(&block));
        control_frame(TYPE_SYN_STREAM, 0, &payload)
    }
}

/// `data` as non-final deflate stored blocks (each at most 65535 bytes): `00`, LEN, NLEN (little
/// endian), bytes; then an empty stored block, the "sync flush" marker. A stored block header ends on
/// a byte boundary, so blocks of successive frames follow each other in the one zlib stream. The
/// marker matters: Go's inflater hands out a finished non-final block's bytes only when the next
/// block begins, and the next block must be inside this frame's header block.
fn stored_blocks(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 5 * (data.len() / 65535 + 2));
    for chunk in data.chunks(65535) {
        let len = chunk.len() as u16;
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&SYNC_FLUSH);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back what `stored_blocks` wrote (the inflater's view of stored blocks).
    fn unstore(mut bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(bytes[0], 0, "non-final stored block");
            let len = u16::from_le_bytes([bytes[1], bytes[2]]);
            assert_eq!(u16::from_le_bytes([bytes[3], bytes[4]]), !len);
            out.extend_from_slice(&bytes[5..5 + usize::from(len)]);
            bytes = &bytes[5 + usize::from(len)..];
        }
        out
    }

    #[test]
    fn syn_stream_carries_the_header_block_in_one_zlib_stream() {
        let mut opener = StreamOpener::default();
        let first = opener.syn_stream(1, &[("streamType", "error")]);
        assert_eq!(&first[..4], &[0x80, 0x03, 0x00, 0x01], "control bit, version 3, SYN_STREAM");
        let len = usize::from(first[5]) << 16 | usize::from(first[6]) << 8 | usize::from(first[7]);
        assert_eq!(len, first.len() - 8);
        assert_eq!(&first[8..12], &1u32.to_be_bytes());
        assert_eq!(&first[18..20], &ZLIB_HEADER, "the first block starts the zlib stream");
        let block = unstore(&first[20..]);
        let mut expected = 1u32.to_be_bytes().to_vec();
        expected.extend_from_slice(&10u32.to_be_bytes());
        expected.extend_from_slice(b"streamtype");
        expected.extend_from_slice(&5u32.to_be_bytes());
        expected.extend_from_slice(b"error");
        assert_eq!(block, expected, "names are lowercased");
        let second = opener.syn_stream(3, &[("streamtype", "stdin")]);
        assert_eq!(&second[8..12], &3u32.to_be_bytes());
        assert_eq!(second[18], 0x00, "later blocks continue the stream without a header");
        assert!(unstore(&second[18..]).ends_with(b"stdin"));
        assert!(second.ends_with(&SYNC_FLUSH), "each block ends with a sync flush");
        assert_eq!(unstore(&stored_blocks(&vec![7u8; 70_000])).len(), 70_000, "long blocks are split");
    }

    #[test]
    fn frames_parse_once_complete() {
        let mut buf = BytesMut::new();
        let reply = control_frame(TYPE_SYN_REPLY, 0, &[0, 0, 0, 5, 0x78, 0x9c, 1, 2]);
        buf.extend_from_slice(&reply[..6]);
        assert_eq!(parse_frame(&mut buf), Ok(None), "incomplete header");
        buf.extend_from_slice(&reply[6..]);
        buf.extend_from_slice(&data_frame(5, false, b"hello"));
        buf.extend_from_slice(&data_frame(1, true, b"{\"status\":\"Success\"}"));
        buf.extend_from_slice(&ping_frame(2));
        buf.extend_from_slice(&control_frame(TYPE_RST_STREAM, 0, &[0, 0, 0, 3, 0, 0, 0, 5]));
        buf.extend_from_slice(&control_frame(9, 0, &[0, 0, 0, 0, 0, 0, 0, 1]));
        buf.extend_from_slice(&control_frame(TYPE_GOAWAY, 0, &[0, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(parse_frame(&mut buf), Ok(Some(Frame::SynReply { stream: 5, fin: false })));
        assert_eq!(parse_frame(&mut buf), Ok(Some(Frame::Data { stream: 5, fin: false, data: b"hello".to_vec() })));
        assert_eq!(
            parse_frame(&mut buf),
            Ok(Some(Frame::Data { stream: 1, fin: true, data: b"{\"status\":\"Success\"}".to_vec() }))
        );
        assert_eq!(parse_frame(&mut buf), Ok(Some(Frame::Ping { id: 2 })));
        assert_eq!(parse_frame(&mut buf), Ok(Some(Frame::RstStream { stream: 3, status: 5 })));
        assert_eq!(parse_frame(&mut buf), Ok(Some(Frame::Other { kind: 9 })), "window updates are ignored");
        assert_eq!(parse_frame(&mut buf), Ok(Some(Frame::GoAway)));
        assert_eq!(parse_frame(&mut buf), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut wrong_version = BytesMut::from(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert_eq!(parse_frame(&mut wrong_version), Err(SpdyError::Version(2)));
        let mut short_ping = BytesMut::from(&control_frame(TYPE_PING, 0, &[0, 1])[..]);
        assert!(matches!(parse_frame(&mut short_ping), Err(SpdyError::Short { .. })));
    }

    #[test]
    fn data_frames_carry_fin() {
        let frame = data_frame(3, true, b"");
        assert_eq!(frame, [0, 0, 0, 3, FLAG_FIN, 0, 0, 0]);
    }
}
