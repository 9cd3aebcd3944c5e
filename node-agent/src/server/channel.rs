//! The Kubernetes remote-command websocket channel protocols (`v4.channel.k8s.io`,
//! `v5.channel.k8s.io`) as pure functions: which subprotocol to accept, and how a message from the
//! client is passed on to the runtime's streaming server, which speaks v4. Every binary message is
//! one channel byte followed by data: 0 stdin, 1 stdout, 2 stderr, 3 error (the exit status as a
//! `metav1.Status`), 4 resize (a `TerminalSize` JSON). v5 adds 255 "close stream": `[255, channel]`.
//! The runtime side is one SPDY stream per channel, so messages to it are channel plus data, and
//! its output becomes messages with the channel byte put back.

/// The stdin channel.
pub const STDIN: u8 = 0;
/// The resize channel (`{"Width":..,"Height":..}`).
pub const RESIZE: u8 = 4;
/// v5's close signal: the next byte names the channel the client has finished writing.
pub const CLOSE: u8 = 255;

/// A channel subprotocol this agent serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V4,
    V5,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V5 => "v5.channel.k8s.io",
        }
    }
}

/// Picks the newest protocol among those offered (`Sec-WebSocket-Protocol` values, comma-separated,
/// possibly in several headers). The base64 variants and the pre-v4 ones are not served.
pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Protocol> {
    let offered: Vec<&str> = offered.into_iter().flat_map(|h| h.split(',')).map(str::trim).collect();
    [Protocol::V5, Protocol::V4].into_iter().find(|p| offered.contains(&p.name()))
}

/// What to do with one message from the client (the runtime gets `message[1..]` on channel `message[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToRuntime {
    /// Send it to the runtime unchanged (stdin data, resize).
    Forward,
    /// The client closed its stdin (v5): half-close the runtime's stdin stream.
    StdinClosed,
    /// Nothing to pass on: empty messages, closes of other streams, or channels a client must not
    /// write (stdout, stderr, error), which the runtime would only log as protocol errors.
    Drop,
}

/// Classifies a binary message from a client speaking `protocol`.
pub fn from_client(protocol: Protocol, message: &[u8]) -> ToRuntime {
    match message {
        [] => ToRuntime::Drop,
        [CLOSE, STDIN, ..] if protocol == Protocol::V5 => ToRuntime::StdinClosed,
        [CLOSE, ..] => ToRuntime::Drop,
        [STDIN | RESIZE, ..] => ToRuntime::Forward,
        _ => ToRuntime::Drop,
    }
}

/// The message carrying `data` of the runtime's stream for `channel` (1 stdout, 2 stderr, 3 the
/// exit status): both protocols share these channels, so the bytes pass unchanged.
pub fn to_client(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(data.len() + 1);
    message.push(channel);
    message.extend_from_slice(data);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v5_is_preferred_and_unknown_protocols_are_refused() {
        assert_eq!(negotiate(["v5.channel.k8s.io"]), Some(Protocol::V5));
        assert_eq!(negotiate(["v4.channel.k8s.io, v5.channel.k8s.io"]), Some(Protocol::V5));
        assert_eq!(negotiate(["channel.k8s.io", "v4.channel.k8s.io"]), Some(Protocol::V4));
        assert_eq!(negotiate(["base64.channel.k8s.io", "SPDY/3.1+portforward.k8s.io"]), None);
        assert_eq!(negotiate([]), None);
    }

    #[test]
    fn client_messages_translate_from_v5_to_v4() {
        assert_eq!(from_client(Protocol::V5, b"\x00data"), ToRuntime::Forward);
        assert_eq!(from_client(Protocol::V5, b"\x04{\"Width\":80,\"Height\":24}"), ToRuntime::Forward);
        assert_eq!(from_client(Protocol::V5, &[CLOSE, STDIN]), ToRuntime::StdinClosed);
        assert_eq!(from_client(Protocol::V5, &[CLOSE, RESIZE]), ToRuntime::Drop);
        assert_eq!(from_client(Protocol::V4, &[CLOSE, STDIN]), ToRuntime::Drop, "255 is not a v4 channel");
        assert_eq!(from_client(Protocol::V5, b"\x01out"), ToRuntime::Drop);
        assert_eq!(from_client(Protocol::V5, b""), ToRuntime::Drop);
    }

    #[test]
    fn runtime_output_and_status_reach_the_client_unchanged() {
        assert_eq!(to_client(1, b"hi\n"), b"\x01hi\n");
        assert_eq!(to_client(2, b"err"), b"\x02err");
        let status = br#"{"metadata":{},"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        let message = to_client(3, status);
        assert_eq!((message[0], &message[1..]), (3, &status[..]));
    }
}
