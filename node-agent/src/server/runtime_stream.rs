//! One exec session with the runtime's streaming server: the URL from CRI `Exec` is upgraded to
//! SPDY/3.1 with `X-Stream-Protocol-Version: v4.channel.k8s.io` (what client-go's SPDY executor does),
//! one stream is opened per channel, and reads come back as channel-numbered output. SPDY rather than
//! the runtime's websocket endpoint because only SPDY can half-close stdin (see [`spdy`](super::spdy)).
//!
//! Split in a reader and a writer so a relay can wait on both directions at once.

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::channel::{RESIZE, STDIN};
use super::error::ServerError;
use super::exec::ExecOptions;
use super::spdy::{data_frame, parse_frame, ping_frame, Frame, StreamOpener};

/// How long the runtime may take to accept the streams.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The protocol asked of the runtime.
pub const RUNTIME_PROTOCOL: &str = "v4.channel.k8s.io";

/// Which SPDY stream carries which channel (client-opened stream ids are odd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIds {
    /// `(stream id, channel, streamtype header)`, in the order they are opened.
    pub streams: Vec<(u32, u8, &'static str)>,
}

impl StreamIds {
    /// The streams v4 expects for `options`: error always, then stdin, stdout, stderr (never with a
    /// TTY, whose output is one stream) and resize (only with a TTY).
    pub fn for_options(options: &ExecOptions) -> Self {
        let wanted = [
            (true, 3, "error"),
            (options.stdin, STDIN, "stdin"),
            (options.stdout, 1, "stdout"),
            (options.stderr && !options.tty, 2, "stderr"),
            (options.tty, RESIZE, "resize"),
        ];
        let streams = wanted
            .into_iter()
            .filter(|(on, _, _)| *on)
            .enumerate()
            .map(|(i, (_, channel, kind))| (2 * i as u32 + 1, channel, kind))
            .collect();
        Self { streams }
    }

    pub fn stream_of(&self, channel: u8) -> Option<u32> {
        self.streams.iter().find(|(_, c, _)| *c == channel).map(|(id, _, _)| *id)
    }

    pub fn channel_of(&self, stream: u32) -> Option<u8> {
        self.streams.iter().find(|(id, _, _)| *id == stream).map(|(_, c, _)| *c)
    }
}

type Io = TokioIo<Upgraded>;

/// What the reader saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Output for the client on `channel` (1 stdout, 2 stderr, 3 the exit status).
    Output { channel: u8, data: Bytes },
    /// The server pinged: the writer must answer.
    Ping(u32),
}

/// The runtime's side of the session, reading.
pub struct RuntimeReader {
    io: ReadHalf<Io>,
    buf: BytesMut,
    ids: StreamIds,
}

/// The runtime's side of the session, writing.
pub struct RuntimeWriter {
    io: WriteHalf<Io>,
    ids: StreamIds,
    stdin_closed: bool,
}

fn runtime_err(what: impl std::fmt::Display) -> ServerError {
    ServerError::Internal(format!("runtime streaming server: {what}"))
}

/// Upgrades `url` (from CRI `Exec`) to SPDY, opens the streams and waits until the runtime accepted
/// them all (it drops data sent on a stream before that).
pub async fn connect(url: &str, options: &ExecOptions) -> Result<(RuntimeReader, RuntimeWriter), ServerError> {
    let uri: http::Uri = url.parse().map_err(|e| runtime_err(format!("url {url:?}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(runtime_err(format!("url {url:?} is not plain http")));
    }
    let authority =
        uri.authority().map(|a| a.to_string()).ok_or_else(|| runtime_err(format!("url {url:?} has no host")))?;
    let tcp =
        TcpStream::connect(&authority).await.map_err(|e| runtime_err(format!("connecting to {authority}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(runtime_err)?;
    tokio::spawn(conn.with_upgrades());
    let req = Request::post(uri.path())
        .header(http::header::HOST, &authority)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", RUNTIME_PROTOCOL)
        .body(Empty::<Bytes>::new())
        .map_err(runtime_err)?;
    let resp = sender.send_request(req).await.map_err(runtime_err)?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let body = Limited::new(resp.into_body(), 4096).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return Err(runtime_err(format!("upgrade refused ({status}): {}", String::from_utf8_lossy(&body).trim())));
    }
    let upgraded = hyper::upgrade::on(resp).await.map_err(runtime_err)?;
    let (read, mut write) = tokio::io::split(TokioIo::new(upgraded));
    let ids = StreamIds::for_options(options);
    let mut opener = StreamOpener::default();
    for (id, _, kind) in &ids.streams {
        let frame = opener.syn_stream(*id, &[("streamtype", kind)]);
        write.write_all(&frame).await.map_err(runtime_err)?;
    }
    let mut reader = RuntimeReader { io: read, buf: BytesMut::with_capacity(16 * 1024), ids: ids.clone() };
    let mut writer = RuntimeWriter { io: write, ids: ids.clone(), stdin_closed: false };
    let mut waiting: Vec<u32> = ids.streams.iter().map(|(id, _, _)| *id).collect();
    let accept = async {
        while !waiting.is_empty() {
            match reader.frame().await? {
                Some(Frame::SynReply { stream, .. }) => waiting.retain(|id| *id != stream),
                Some(Frame::Ping { id }) => writer.ping(id).await?,
                Some(Frame::RstStream { stream, status }) => {
                    return Err(runtime_err(format!("stream {stream} refused (status {status})")))
                }
                Some(_) => {}
                None => return Err(runtime_err("closed before accepting the streams")),
            }
        }
        Ok::<_, ServerError>(())
    };
    tokio::time::timeout(REPLY_TIMEOUT, accept).await.map_err(|_| runtime_err("streams not accepted in time"))??;
    Ok((reader, writer))
}

impl RuntimeReader {
    async fn frame(&mut self) -> Result<Option<Frame>, ServerError> {
        loop {
            if let Some(frame) = parse_frame(&mut self.buf).map_err(runtime_err)? {
                return Ok(Some(frame));
            }
            if self.io.read_buf(&mut self.buf).await.map_err(runtime_err)? == 0 {
                return Ok(None);
            }
        }
    }

    /// The next output or ping; `None` when the runtime ended the session (it resets the streams and
    /// goes away after writing the exit status). Cancel-safe: bytes read stay in the buffer.
    pub async fn next(&mut self) -> Result<Option<Event>, ServerError> {
        loop {
            match self.frame().await? {
                Some(Frame::Data { stream, data, .. }) if !data.is_empty() => {
                    if let Some(channel) = self.ids.channel_of(stream).filter(|c| (1..=3).contains(c)) {
                        return Ok(Some(Event::Output { channel, data: Bytes::from(data) }));
                    }
                }
                Some(Frame::Ping { id }) => return Ok(Some(Event::Ping(id))),
                Some(Frame::GoAway) | None => return Ok(None),
                Some(_) => {}
            }
        }
    }
}

impl RuntimeWriter {
    /// Data for channel `channel` (stdin or resize); dropped when the session has no such stream.
    pub async fn send(&mut self, channel: u8, data: &[u8]) -> Result<(), ServerError> {
        let Some(stream) = self.ids.stream_of(channel) else { return Ok(()) };
        if data.is_empty() || (channel == STDIN && self.stdin_closed) {
            return Ok(());
        }
        for chunk in data.chunks(32 * 1024) {
            self.io.write_all(&data_frame(stream, false, chunk)).await.map_err(runtime_err)?;
        }
        Ok(())
    }

    /// Half-closes stdin: the command reads EOF.
    pub async fn close_stdin(&mut self) -> Result<(), ServerError> {
        let Some(stream) = self.ids.stream_of(STDIN) else { return Ok(()) };
        if std::mem::replace(&mut self.stdin_closed, true) {
            return Ok(());
        }
        self.io.write_all(&data_frame(stream, true, &[])).await.map_err(runtime_err)
    }

    pub async fn ping(&mut self, id: u32) -> Result<(), ServerError> {
        self.io.write_all(&ping_frame(id)).await.map_err(runtime_err)
    }

    /// Ends the session (the runtime sees the connection close and stops the command's streams).
    pub async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(stdin: bool, tty: bool) -> ExecOptions {
        ExecOptions { command: vec!["sh".into()], stdin, stdout: true, stderr: true, tty }
    }

    #[test]
    fn streams_follow_the_options_in_client_go_order() {
        let ids = StreamIds::for_options(&options(false, false));
        assert_eq!(ids.streams, [(1, 3, "error"), (3, 1, "stdout"), (5, 2, "stderr")]);
        let ids = StreamIds::for_options(&options(true, true));
        assert_eq!(ids.streams, [(1, 3, "error"), (3, 0, "stdin"), (5, 1, "stdout"), (7, 4, "resize")]);
        assert_eq!(ids.stream_of(STDIN), Some(3));
        assert_eq!(ids.channel_of(7), Some(RESIZE));
        assert_eq!(ids.channel_of(9), None);
        assert_eq!(ids.stream_of(2), None, "no stderr with a tty");
    }
}
