//! Runs one attempt of a probe action against a container and turns what happened into an
//! [`Outcome`] with the kubelet's messages: `exec` through CRI `ExecSync` (non-zero exit fails with
//! the command's output; the runtime's time-out fails as `command "..." timed out`; a runtime error is
//! an error), `httpGet` (200-399 passes, a redirect to another host passes with a warning), a TCP
//! connect, or a gRPC health check. The ExecSync call itself is shared with lifecycle hooks.

use std::time::Duration;

use gantry_cri_proto::runtime::ExecSyncResponse;
use tokio::net::TcpStream;

use super::action::{host_port, HandlerAction};
use super::state::Outcome;
use super::{grpc, http};
use crate::runtime::{Runtime, RuntimeError};

/// The most output of an exec probe kept for messages (the kubelet's limit).
pub const MAX_OUTPUT: usize = 10 * 1024;

/// How an `ExecSync` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecResult {
    /// The command ran and exited; `output` is stdout then stderr, cut to [`MAX_OUTPUT`].
    Exited { code: i32, output: String, stderr: String },
    /// The runtime killed it at the time-out.
    TimedOut,
    /// The runtime could not run it (container gone, command not found...).
    Failed(String),
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_OUTPUT {
        let mut end = MAX_OUTPUT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// What an `ExecSync` answer means.
pub fn exec_result(answer: Result<ExecSyncResponse, RuntimeError>) -> ExecResult {
    match answer {
        Ok(r) => {
            let mut output = String::from_utf8_lossy(&r.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&r.stderr).into_owned();
            output.push_str(&stderr);
            ExecResult::Exited { code: r.exit_code, output: cut(output), stderr: cut(stderr) }
        }
        Err(RuntimeError::Call { status, .. }) if status.code() == tonic::Code::DeadlineExceeded => {
            ExecResult::TimedOut
        }
        Err(RuntimeError::Timeout { .. }) => ExecResult::TimedOut,
        Err(e) => ExecResult::Failed(e.runtime_message()),
    }
}

/// Runs `command` in container `id`, stopped by the runtime after `timeout` (zero: no limit).
pub async fn exec(runtime: &Runtime, id: &str, command: &[String], timeout: Duration) -> ExecResult {
    exec_result(runtime.exec_sync(id, command.to_vec(), timeout).await)
}

/// The probe outcome of an exec attempt of `command`.
pub fn exec_outcome(result: ExecResult, command: &[String]) -> Outcome {
    match result {
        ExecResult::Exited { code: 0, .. } => Outcome::Success,
        ExecResult::Exited { output, .. } => Outcome::Failure(output),
        ExecResult::TimedOut => Outcome::Failure(format!("command {:?} timed out", command.join(" "))),
        ExecResult::Failed(message) => Outcome::Error(message),
    }
}

/// The probe outcome of an HTTP GET.
pub fn http_outcome(result: Result<http::Response, http::HttpError>) -> Outcome {
    match result {
        Ok(r) if (200..400).contains(&r.status) && r.redirect_not_followed => {
            Outcome::Warning(format!("Probe terminated redirects, Response status: {}", r.status))
        }
        Ok(r) if (200..400).contains(&r.status) => Outcome::Success,
        Ok(r) => Outcome::Failure(format!("HTTP probe failed with statuscode: {}", r.status)),
        Err(e) => Outcome::Failure(e.to_string()),
    }
}

/// Connects to `host:port` within `timeout`.
pub async fn tcp_outcome(host: &str, port: u16, timeout: Duration) -> Outcome {
    let addr = host_port(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: connect: {e}")),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// One probe attempt of `action` against container `container_id`.
pub async fn probe_once(runtime: &Runtime, container_id: &str, action: &HandlerAction, timeout: Duration) -> Outcome {
    match action {
        HandlerAction::Exec { command } => exec_outcome(exec(runtime, container_id, command, timeout).await, command),
        HandlerAction::HttpGet(get) => http_outcome(http::get(get, timeout).await),
        HandlerAction::TcpSocket { host, port } => tcp_outcome(host, *port, timeout).await,
        HandlerAction::Grpc { host, port, service } => grpc::check(host, *port, service, timeout).await,
        HandlerAction::Sleep(_) => Outcome::Error("sleep is a lifecycle hook action, not a probe".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: i32, stdout: &str, stderr: &str) -> Result<ExecSyncResponse, RuntimeError> {
        Ok(ExecSyncResponse { stdout: stdout.into(), stderr: stderr.into(), exit_code: code })
    }

    fn call_error(code: tonic::Code, message: &str) -> Result<ExecSyncResponse, RuntimeError> {
        Err(RuntimeError::Call {
            call: "ExecSync",
            object: "container c1".into(),
            status: tonic::Status::new(code, message),
        })
    }

    #[test]
    fn exec_answers_become_outcomes() {
        let cmd = vec!["cat".to_string(), "/tmp/healthy".to_string()];
        let cases = [
            (answer(0, "ok\n", ""), Outcome::Success),
            (
                answer(1, "", "cat: can't open '/tmp/healthy': No such file or directory\n"),
                Outcome::Failure("cat: can't open '/tmp/healthy': No such file or directory\n".into()),
            ),
            (answer(2, "out\n", "err\n"), Outcome::Failure("out\nerr\n".into())),
            (
                call_error(tonic::Code::DeadlineExceeded, "timeout 1s exceeded: context deadline exceeded"),
                Outcome::Failure("command \"cat /tmp/healthy\" timed out".into()),
            ),
            (
                call_error(tonic::Code::Unknown, "exec: \"cat\": executable file not found in $PATH"),
                Outcome::Error("exec: \"cat\": executable file not found in $PATH".into()),
            ),
        ];
        for (a, expected) in cases {
            let shown = format!("{a:?}");
            assert_eq!(exec_outcome(exec_result(a), &cmd), expected, "{shown}");
        }
    }

    #[test]
    fn long_output_is_cut() {
        let long = "é".repeat(MAX_OUTPUT);
        let ExecResult::Exited { output, .. } = exec_result(answer(1, &long, "")) else { panic!("exited") };
        assert!(output.len() <= MAX_OUTPUT && output.len() > MAX_OUTPUT - 2, "{}", output.len());
    }

    #[test]
    fn http_statuses_become_outcomes() {
        let ok = |status, redirect_not_followed| Ok(http::Response { status, redirect_not_followed });
        assert_eq!(http_outcome(ok(200, false)), Outcome::Success);
        assert_eq!(http_outcome(ok(399, false)), Outcome::Success);
        assert_eq!(
            http_outcome(ok(302, true)),
            Outcome::Warning("Probe terminated redirects, Response status: 302".into())
        );
        assert_eq!(http_outcome(ok(404, false)), Outcome::Failure("HTTP probe failed with statuscode: 404".into()));
        assert_eq!(http_outcome(ok(199, false)), Outcome::Failure("HTTP probe failed with statuscode: 199".into()));
    }

    #[tokio::test]
    async fn tcp_connects_or_fails_naming_the_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(tcp_outcome("127.0.0.1", port, Duration::from_secs(1)).await, Outcome::Success);
        drop(listener);
        match tcp_outcome("127.0.0.1", port, Duration::from_secs(1)).await {
            Outcome::Failure(m) => assert!(m.starts_with(&format!("dial tcp 127.0.0.1:{port}: connect:")), "{m}"),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
