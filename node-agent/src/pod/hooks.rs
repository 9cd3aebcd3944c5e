//! Lifecycle hooks: `postStart` (run right after StartContainer; the container counts as started only
//! once it finished) and `preStop` (run before a container is stopped). Handlers are `exec` (CRI
//! ExecSync: a non-zero exit fails), `httpGet` (any HTTP answer passes; only a failed request
//! fails) and `sleep`. A hook runs within a time limit (the grace period for preStop); failures are
//! reported with the kubelet's messages, which callers put in `FailedPostStartHook` /
//! `FailedPreStopHook` events. What to do about a failure (kill, carry on) is the caller's.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};

use super::probe::action::{hook_action, HandlerAction};
use super::probe::handler::{exec, ExecResult};
use super::probe::http;
use crate::pod::backoff::go_duration;
use crate::runtime::Runtime;

/// The longest a postStart hook may run (the kubelet's default runtime call deadline).
pub const POST_START_LIMIT: Duration = Duration::from_secs(120);

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PostStart,
    PreStop,
}

impl Hook {
    /// The container's handler for this hook, if any.
    pub fn of(self, c: &Container) -> Option<&LifecycleHandler> {
        let lifecycle = c.lifecycle.as_ref()?;
        match self {
            Self::PostStart => lifecycle.post_start.as_ref(),
            Self::PreStop => lifecycle.pre_stop.as_ref(),
        }
    }

    /// The Warning event reason of a failure.
    pub fn failure_reason(self) -> &'static str {
        match self {
            Self::PostStart => "FailedPostStartHook",
            Self::PreStop => "FailedPreStopHook",
        }
    }
}

/// `name_namespace(uid)`: how kubelet messages name a pod.
pub fn pod_label(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

/// Go's `%v` of a string slice: `[sh -c exit 1]`.
fn go_list(command: &[String]) -> String {
    format!("[{}]", command.join(" "))
}

/// The failure message of an exec hook that ended with `result`, or `None` if it passed.
pub fn exec_failure(result: &ExecResult, command: &[String], container: &str, pod: &str) -> Option<String> {
    let (error, output) = match result {
        ExecResult::Exited { code: 0, .. } => return None,
        ExecResult::Exited { code, output, stderr } => {
            (format!("command '{}' exited with {code}: {stderr}", command.join(" ")), output.as_str())
        }
        ExecResult::TimedOut => (format!("command {:?} timed out", command.join(" ")), ""),
        ExecResult::Failed(message) => (message.clone(), ""),
    };
    Some(format!(
        "Exec lifecycle hook ({}) for Container {container:?} in Pod {pod:?} failed - error: {error}, message: {output:?}",
        go_list(command)
    ))
}

/// The failure message of an HTTP hook whose request failed.
pub fn http_failure(error: &http::HttpError, path: &str, container: &str, pod: &str) -> String {
    format!("HTTP lifecycle hook ({path}) for Container {container:?} in Pod {pod:?} failed - error: {error}")
}

/// Runs `handler` as `hook` of container `c` (id `container_id`) within `limit`. `pod_ip` is where
/// an `httpGet` without a host connects. The error is the kubelet's failure message.
#[allow(clippy::too_many_arguments)]
pub async fn run_hook(
    runtime: &Runtime,
    pod: &Pod,
    c: &Container,
    container_id: &str,
    hook: Hook,
    handler: &LifecycleHandler,
    pod_ip: &str,
    limit: Duration,
) -> Result<(), String> {
    let label = pod_label(pod);
    let action = hook_action(handler, c, pod_ip)
        .map_err(|e| format!("{hook:?} hook for Container {:?} in Pod {label:?} failed - error: {e}", c.name))?;
    let attempt = async {
        match &action {
            HandlerAction::Exec { command } => {
                let result = exec(runtime, container_id, command, limit).await;
                exec_failure(&result, command, &c.name, &label).map_or(Ok(()), Err)
            }
            HandlerAction::HttpGet(get) => {
                http::get(get, limit).await.map(|_| ()).map_err(|e| http_failure(&e, &get.path, &c.name, &label))
            }
            HandlerAction::Sleep(d) => {
                tokio::time::sleep(*d).await;
                Ok(())
            }
            // Not hook actions: `hook_action` never returns them.
            HandlerAction::TcpSocket { .. } | HandlerAction::Grpc { .. } => Ok(()),
        }
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{hook:?} hook for Container {:?} in Pod {label:?} did not complete within {}",
            c.name,
            go_duration(limit)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_hook_results_become_kubelet_messages() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 1".to_string()];
        let pod = "web_default(u1)";
        let cases = [
            (ExecResult::Exited { code: 0, output: "ok".into(), stderr: String::new() }, None),
            (
                ExecResult::Exited { code: 1, output: "boom\n".into(), stderr: "boom\n".into() },
                Some(
                    "Exec lifecycle hook ([sh -c exit 1]) for Container \"main\" in Pod \"web_default(u1)\" failed - \
                     error: command 'sh -c exit 1' exited with 1: boom\n, message: \"boom\\n\"",
                ),
            ),
            (
                ExecResult::TimedOut,
                Some(
                    "Exec lifecycle hook ([sh -c exit 1]) for Container \"main\" in Pod \"web_default(u1)\" failed - \
                     error: command \"sh -c exit 1\" timed out, message: \"\"",
                ),
            ),
            (
                ExecResult::Failed("container not running".into()),
                Some(
                    "Exec lifecycle hook ([sh -c exit 1]) for Container \"main\" in Pod \"web_default(u1)\" failed - \
                     error: container not running, message: \"\"",
                ),
            ),
        ];
        for (result, expected) in cases {
            assert_eq!(exec_failure(&result, &cmd, "main", pod).as_deref(), expected, "{result:?}");
        }
    }

    #[test]
    fn hooks_are_found_on_the_container() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}
        }))
        .expect("container");
        assert!(Hook::PreStop.of(&c).is_some());
        assert!(Hook::PostStart.of(&c).is_none());
        assert_eq!(Hook::PostStart.failure_reason(), "FailedPostStartHook");
        assert_eq!(Hook::PreStop.failure_reason(), "FailedPreStopHook");
    }

    #[test]
    fn pods_are_labelled_like_the_kubelet() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"}
        }))
        .expect("pod");
        assert_eq!(pod_label(&pod), "web_ns(u1)");
    }

    #[test]
    fn http_hook_failures_name_the_path() {
        let err = http::HttpError::Timeout { url: "http://10.0.0.1:80/stop".into(), after: Duration::from_secs(2) };
        assert_eq!(
            http_failure(&err, "/stop", "main", "web_ns(u1)"),
            "HTTP lifecycle hook (/stop) for Container \"main\" in Pod \"web_ns(u1)\" failed - error: Get \
             \"http://10.0.0.1:80/stop\": timeout: no response within 2s"
        );
    }
}
