//! `kubectl logs` and `kubectl exec` end to end: the real kubectl against a 3-replica control plane,
//! which proxies `pods/log` and `pods/exec` to a real node agent running busybox pods on a private
//! containerd. Covers logs with `--tail`, `--timestamps`, `--limit-bytes`, `--since`, `-f` and
//! `--previous`; exec output, exit codes, stdin and a TTY session; the agent refusing clients without
//! a certificate; its `/metrics`; and the API's errors for pods whose node is missing or unreachable.
//!
//! Needs root, containerd, runc, containernetworking-plugins, umoci, busybox-static, curl and
//! util-linux `script`. Build first: `cargo build -p control-plane -p gantry-node-agent --bins`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use gantry_tests::node_env::{pod_ready, wait_for, AgentConfig, AgentProcess, CniNetwork, KubeEnv, NodeRuntime};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

const NODE: &str = "logs-node";

fn busybox_pod(name: &str, node: &str, script: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": gantry_tests::images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script]
            }]
        }
    })
}

/// kubectl with the test's kubeconfig and server, for commands that need their own stdin or stdout.
fn kubectl(env: &KubeEnv) -> Command {
    let mut cmd = Command::new("/usr/bin/kubectl");
    cmd.arg("--kubeconfig")
        .arg(&env.k.kubeconfig)
        .arg("--cache-dir")
        .arg(&env.k.cache_dir)
        .arg("--server")
        .arg(&env.url);
    cmd
}

fn curl_agent(port: u16, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (body.to_string(), code.to_string())
}

/// The value of the sample `name` (exact series text before the value) in Prometheus text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}

fn running(env: &KubeEnv, name: &str) -> Option<Value> {
    let pod = env.pod(name)?;
    (pod["status"]["phase"] == "Running" && pod_ready(&pod)).then_some(pod)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_and_exec_reach_containers_through_the_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime =
        NodeRuntime::start(dir.path(), CniNetwork::new("gnalogs0", "10.218.0.0/16")).expect("containerd with images");
    let (cluster, k, work) = gantry_tests::kube::start_api_cluster().await;
    let env = KubeEnv { url: cluster.api_url(0).expect("api url"), k };
    let agent = AgentProcess::start(AgentConfig::new(&cluster.kubeconfig(), &runtime.endpoint(), NODE, dir.path()));
    let port = agent.config().port;
    let context = || format!("{}\n{}", agent.log_tail(), runtime.log_tail());

    env.wait_node_ready(NODE, context).await;
    env.create(
        work.path(),
        &busybox_pod("numbers", NODE, "echo oops >&2; sleep 1; for i in 1 2 3 4 5; do echo line $i; done; sleep 3600"),
    );
    env.create(
        work.path(),
        &busybox_pod("ticker", NODE, "i=1; while true; do echo tick $i; i=$((i+1)); sleep 1; done"),
    );
    env.create(
        work.path(),
        &busybox_pod("restarter", NODE, "echo run $(cat /proc/sys/kernel/random/uuid); sleep 1; exit 1"),
    );
    for name in ["numbers", "ticker"] {
        wait_for(Duration::from_secs(60), &format!("{name} running"), || running(&env, name), context).await;
    }

    // Plain logs, then --tail, --timestamps, --limit-bytes and --since.
    let all = wait_for(
        Duration::from_secs(20),
        "numbers' output",
        || {
            let out = env.ok(&["logs", "numbers"]);
            out.contains("line 5").then_some(out)
        },
        context,
    )
    .await;
    // stderr (written a second before the rest, so the runtime's two copiers cannot reorder it) too.
    assert_eq!(all, "oops\nline 1\nline 2\nline 3\nline 4\nline 5\n");
    assert_eq!(env.ok(&["logs", "numbers", "--tail=2"]), "line 4\nline 5\n");
    assert_eq!(env.ok(&["logs", "pod/numbers", "-c", "main", "--limit-bytes=8"]), "oops\nlin");
    let stamped = env.ok(&["logs", "numbers", "--timestamps", "--tail=3"]);
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 3, "{stamped}");
    for (line, text) in lines.iter().zip(["line 3", "line 4", "line 5"]) {
        let (time, rest) = line.split_once(' ').expect("timestamp prefix");
        assert_eq!(rest, text);
        assert!(
            time.len() == 30 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "RFC3339 with nanoseconds: {time}"
        );
        assert!(time.parse::<Timestamp>().is_ok(), "{time}");
    }
    assert_eq!(env.ok(&["logs", "numbers", "--since=1h"]), all);
    // Lines written at start are outside --since=1s once the pod has been up for a few seconds.
    let started = env.pod("numbers").expect("pod")["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
        .as_str()
        .expect("startedAt")
        .to_string();
    let started: Timestamp = started.parse().expect("startedAt is RFC3339");
    wait_for(
        Duration::from_secs(10),
        "4 s since numbers started",
        || (Timestamp::now().duration_since(started).as_secs() >= 4).then_some(()),
        String::new,
    )
    .await;
    assert_eq!(env.ok(&["logs", "numbers", "--since=1s"]), "");
    let err = env.k.fails(&env.url, &["logs", "numbers", "--previous"]);
    assert!(err.contains("previous terminated container \"main\" in pod \"numbers\" not found"), "{err}");

    // logs -f: a line printed after kubectl started arrives while it runs.
    let before = env.ok(&["logs", "ticker", "--tail=1"]);
    let last: u64 = before.trim().strip_prefix("tick ").and_then(|n| n.parse().ok()).expect("tick number");
    let mut follow = kubectl(&env)
        .args(["logs", "-f", "ticker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl logs -f");
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let newer = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let n: u64 = line.strip_prefix("tick ").and_then(|n| n.parse().ok()).unwrap_or(0);
                seen.push(line);
                if n > last + 2 {
                    break n;
                }
            }
            Err(_) => panic!("logs -f showed no new line within 30 s; saw {seen:?}\n{}", context()),
        }
    };
    assert!(
        seen.iter().any(|l| l == "tick 1"),
        "logs -f starts with the existing lines: {:?}",
        &seen[..seen.len().min(3)]
    );
    assert!(newer > last);
    let _ = follow.kill();
    let _ = follow.wait();

    // --previous after a restart shows the old attempt's output.
    let restarted = wait_for(
        Duration::from_secs(60),
        "restarter restarted",
        || {
            let pod = env.pod("restarter")?;
            (pod["status"]["containerStatuses"][0]["restartCount"].as_i64()? >= 1).then_some(pod)
        },
        context,
    )
    .await;
    assert!(restarted["status"]["containerStatuses"][0]["lastState"]["terminated"].is_object());
    let previous = env.ok(&["logs", "restarter", "--previous"]);
    let current = wait_for(
        Duration::from_secs(20),
        "current attempt's output",
        || {
            let out = env.ok(&["logs", "restarter"]);
            out.starts_with("run ").then_some(out)
        },
        context,
    )
    .await;
    assert!(previous.starts_with("run ") && previous.trim().len() > 20, "{previous:?}");
    assert_ne!(previous, current, "the previous attempt printed its own id");

    // exec: output and the command's exit code.
    assert_eq!(env.ok(&["exec", "numbers", "--", "echo", "hello", "world"]), "hello world\n");
    let out = env.k.run(&env.url, &["exec", "numbers", "--", "sh", "-c", "echo hi; echo bad >&2; exit 3"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad"), "{stderr}");
    assert_eq!(out.status.code(), Some(3), "kubectl exits with the command's code: {stderr}");
    let err = env.k.fails(&env.url, &["exec", "numbers", "-c", "nope", "--", "true"]);
    assert!(err.contains("container nope is not valid for pod numbers"), "{err}");
    // An exited container of a running pod: the agent's answer, not a protocol complaint, reaches kubectl.
    let mut mixed = busybox_pod("mixed", NODE, "sleep 3600");
    mixed["spec"]["restartPolicy"] = "OnFailure".into();
    mixed["spec"]["containers"].as_array_mut().expect("containers").push(serde_json::json!({
        "name": "side", "image": gantry_tests::images::BUSYBOX_IMAGE, "command": ["sh", "-c", "echo side-done"]
    }));
    env.create(work.path(), &mixed);
    wait_for(
        Duration::from_secs(60),
        "mixed's side container completed",
        || {
            let pod = env.pod("mixed")?;
            let side = pod["status"]["containerStatuses"].as_array()?.iter().find(|c| c["name"] == "side")?.clone();
            (pod["status"]["phase"] == "Running" && side["state"]["terminated"]["reason"] == "Completed").then_some(())
        },
        context,
    )
    .await;
    assert_eq!(env.ok(&["logs", "mixed", "-c", "side"]), "side-done\n");
    let err = env.k.fails(&env.url, &["exec", "mixed", "-c", "side", "--", "true"]);
    assert!(err.contains("container \"side\" in pod \"mixed\" is not running"), "{err}");
    assert!(!err.contains("SPDY"), "{err}");

    // exec -i: stdin reaches the command and its end does too (v5's close, a SPDY half-close towards
    // the runtime), so `cat` and `wc` finish; 300 kB is more than one SPDY window of 64 KiB.
    let piped = |args: &[&str], input: Vec<u8>| {
        let mut child = kubectl(&env)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl exec -i");
        let mut stdin = child.stdin.take().expect("stdin");
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        wait_child(child, Duration::from_secs(60))
    };
    let out = piped(&["exec", "-i", "numbers", "--", "cat"], b"data from stdin\n".to_vec());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "data from stdin\n", "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    let out = piped(&["exec", "-i", "numbers", "--", "wc", "-c"], vec![b'x'; 300_000]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "300000", "{}", String::from_utf8_lossy(&out.stderr));

    // exec -it under a pseudo-terminal: a scripted shell session with a TTY and its exit code.
    let session = format!(
        "/usr/bin/kubectl --kubeconfig {} --cache-dir {} --server {} exec -it numbers -- sh",
        env.k.kubeconfig.display(),
        env.k.cache_dir.display(),
        env.url
    );
    let mut child = Command::new("script")
        .args(["-qec", &session, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::spawn(move || {
        // Typed slowly, like a person: the shell must be up before it reads.
        for line in ["tty\n", "echo marker-$((6*7))\n", "exit 7\n"] {
            std::thread::sleep(Duration::from_millis(1500));
            if stdin.write_all(line.as_bytes()).is_err() {
                return;
            }
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let out = wait_child(child, Duration::from_secs(60));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("/dev/pts/"), "the command has a terminal: {printed}");
    assert!(printed.contains("marker-42"), "{printed}");
    assert_eq!(out.status.code(), Some(7), "{printed}");

    // The agent refuses logs and exec without a client certificate; /healthz and /metrics are open.
    let (body, code) = curl_agent(port, "/containerLogs/default/numbers/main");
    assert_eq!(code, "401", "{body}");
    let status: Value = serde_json::from_str(&body).expect("a Status body");
    assert_eq!((status["kind"].as_str(), status["code"].as_u64()), (Some("Status"), Some(401)));
    assert_eq!(curl_agent(port, "/exec/default/numbers/main?command=true&stdout=true").1, "401");
    assert_eq!(curl_agent(port, "/healthz"), ("ok".to_string(), "200".to_string()));
    let (metrics, code) = curl_agent(port, "/metrics");
    assert_eq!(code, "200");
    for series in [
        "kubelet_runtime_operations_duration_seconds_count{operation_type=\"RunPodSandbox\"}",
        "kubelet_runtime_operations_duration_seconds_count{operation_type=\"Exec\"}",
        "kubelet_pod_start_duration_seconds_count",
        "gantry_node_agent_pod_syncs_total{result=\"success\"}",
    ] {
        let value = sample(&metrics, series).unwrap_or_else(|| panic!("{series} missing:\n{metrics}"));
        assert!(value > 0.0, "{series} is {value}");
    }
    assert!(sample(&metrics, "kubelet_running_pods").is_some_and(|n| n >= 2.0), "{metrics}");

    // The API's own errors: unknown pod, ambiguous container, unbound pod, missing or silent node.
    let err = env.k.fails(&env.url, &["get", "--raw", "/api/v1/namespaces/default/pods/nope/log"]);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
    let mut two = busybox_pod("two", "ghost-node", "true");
    two["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(serde_json::json!({"name": "side", "image": "x"}));
    env.create(work.path(), &two);
    let err = env.k.fails(&env.url, &["get", "--raw", "/api/v1/namespaces/default/pods/two/log"]);
    assert!(err.contains("a container name must be specified for pod two, choose one of: [main side]"), "{err}");
    let mut unbound = busybox_pod("unbound", "", "true");
    unbound["spec"].as_object_mut().expect("spec").remove("nodeName");
    unbound["spec"]["nodeSelector"] = serde_json::json!({"gantry.dev/no-such-node": "x"});
    env.create(work.path(), &unbound);
    let err = env.k.fails(&env.url, &["get", "--raw", "/api/v1/namespaces/default/pods/unbound/log"]);
    assert!(err.contains("pod unbound does not have a host assigned"), "{err}");
    env.create(work.path(), &busybox_pod("ghost", "ghost-node", "true"));
    let err = env.k.fails(&env.url, &["logs", "ghost"]);
    assert!(err.contains("nodes \"ghost-node\" not found"), "{err}");
    let dead_port = gantry_tests::free_port().expect("free port");
    let dead_node = serde_json::json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "dead-node"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": dead_port}}}
    });
    env.create(work.path(), &dead_node);
    // Status is a subresource: the create drops it, so set it like an agent would.
    let patch = serde_json::json!({"status": dead_node["status"]}).to_string();
    env.ok(&["patch", "node", "dead-node", "--subresource=status", "--type=merge", "-p", &patch]);
    env.create(work.path(), &busybox_pod("stranded", "dead-node", "true"));
    let err = env.k.fails(&env.url, &["logs", "stranded"]);
    assert!(err.contains("error dialing backend"), "{err}");
    let err = env.k.fails(&env.url, &["exec", "stranded", "--", "true"]);
    assert!(err.contains("error dialing backend"), "{err}");

    // Leave nothing running on the runtime: the agent tears its pods down.
    env.ok(&["delete", "pod", "numbers", "ticker", "restarter", "mixed", "--wait=true", "--timeout=60s"]);
    drop(agent);
    drop(runtime);
}

/// Waits for `child` with a deadline (killing it then) and returns what it printed.
fn wait_child(child: std::process::Child, timeout: Duration) -> std::process::Output {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let out = rx.recv().ok().and_then(Result::ok);
            panic!(
                "command still running after {timeout:?}; it printed: {:?}",
                out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            );
        }
    }
}
