//! The Kubernetes remote-command websocket channel protocols (`v4.channel.k8s.io`,
//! `v5.channel.k8s.io`) as pure functions: which subprotocol to accept, and how a message from the
//! client is passed on to the runtime's streaming server, which speaks v4. Every binary message is
//! one channel byte followed by data: 0 stdin, 1 stdout, 2 stderr, 3 error (the exit status as a
//! `metav1.Status`), 4 resize (a `TerminalSize` JSON). v5 adds 255 "close stream": `[255, channel]`.

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

/// What to do with one message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToRuntime {
    /// Send it to the runtime unchanged (stdin data, resize).
    Forward,
    /// The client closed its stdin (v5). v4 has no way to say so: see [`super::exec`].
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

/// Whether a message from the runtime (v4) goes to the client. Both protocols share channels 1-3, so
/// output and the exit status pass unchanged; only channels a v4 server may write are passed.
pub fn to_client(message: &[u8]) -> bool {
    matches!(message.first(), Some(1..=3))
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
        assert!(to_client(b"\x01hi\n"));
        assert!(to_client(b"\x02err"));
        let status = br#"{"metadata":{},"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert!(to_client(&[&[3u8][..], status].concat()));
        assert!(to_client(&[1]), "the runtime's empty 'connected' message");
        assert!(!to_client(b"\x00echo"));
        assert!(!to_client(b""));
    }
}
