//! Waiting for what other processes bring about (a controller's reconcile, a kubelet's report):
//! poll a check until it holds, and fail with the check's last complaint if it never does.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often `eventually` checks: often enough not to slow a test down noticeably, seldom enough
/// that a check that shells out to `kubectl` does not load the machine.
const EVERY: Duration = Duration::from_millis(200);

/// Calls `check` until it returns `Ok`, for at most `limit`; then panics, naming `what` and the
/// last error the check gave.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    eventually_every(what, limit, EVERY, check).await
}

/// Like `eventually`, checking every `every`.
pub async fn eventually_every<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("timed out waiting for {what}; last: {last}"),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_ok() {
        let mut calls = 0;
        let got = eventually_every("the third call", Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(format!("call {n}"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out waiting for never; last: still no")]
    async fn panics_with_the_last_error() {
        eventually_every("never", Duration::from_millis(20), Duration::from_millis(5), || async {
            Err::<(), _>("still no".to_string())
        })
        .await;
    }
}
