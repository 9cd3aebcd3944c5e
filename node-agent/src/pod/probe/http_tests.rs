//! Tests of the probe HTTP client: request bytes, response heads and redirect targets (pure), and
//! GETs against tiny local servers (plain and TLS with a self-signed certificate) answering canned
//! responses.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::*;

fn target(host: &str, port: u16, path: &str) -> HttpGet {
    HttpGet { scheme: Scheme::Http, host: host.into(), port, path: path.into(), headers: vec![] }
}

#[test]
fn requests_carry_kubelet_headers_and_the_spec_headers() {
    let mut t = target("10.0.0.5", 8080, "/healthz");
    let plain = String::from_utf8(request_bytes(&t).expect("request")).expect("utf8");
    assert_eq!(
        plain,
        "GET /healthz HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n"
    );
    t.headers = vec![("Host".into(), "example.test".into()), ("X-Token".into(), "a b".into())];
    let custom = String::from_utf8(request_bytes(&t).expect("request")).expect("utf8");
    assert!(custom.contains("\r\nHost: example.test\r\n"), "{custom}");
    assert!(!custom.contains("10.0.0.5:8080"), "{custom}");
    assert!(custom.contains("\r\nX-Token: a b\r\n"), "{custom}");
    t.headers = vec![("X-Bad".into(), "a\r\nInjected: 1".into())];
    assert!(matches!(request_bytes(&t), Err(HttpError::Header { .. })));
}

#[test]
fn response_heads_parse_once_complete() {
    assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(None));
    assert_eq!(parse_head(b"HTTP/1.0 404 Not Found\r\n\r\nbody"), Ok(Some(Head { status: 404, location: None })));
    assert_eq!(
        parse_head(b"HTTP/1.1 302 Found\r\nlocation: /next\r\n\r\n"),
        Ok(Some(Head { status: 302, location: Some("/next".into()) }))
    );
    assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
}

#[test]
fn redirect_targets_resolve_against_the_current_request() {
    let current = HttpGet { headers: vec![("X-A".into(), "1".into())], ..target("10.0.0.5", 8080, "/a/b?x=1") };
    type Parts = (Scheme, &'static str, u16, &'static str);
    let cases: [(&str, Option<Parts>); 8] = [
        ("/other", Some((Scheme::Http, "10.0.0.5", 8080, "/other"))),
        ("c", Some((Scheme::Http, "10.0.0.5", 8080, "/a/c"))),
        ("http://10.0.0.5:9000/x", Some((Scheme::Http, "10.0.0.5", 9000, "/x"))),
        ("https://example.test/", Some((Scheme::Https, "example.test", 443, "/"))),
        ("HTTP://example.test", Some((Scheme::Http, "example.test", 80, "/"))),
        ("//10.0.0.6:81/y?z", Some((Scheme::Http, "10.0.0.6", 81, "/y?z"))),
        ("http://[fd00::1]:8443/v6", Some((Scheme::Http, "fd00::1", 8443, "/v6"))),
        ("ftp://x/", None),
    ];
    for (location, expected) in cases {
        let got = redirect_target(&current, location);
        let got_parts = got.as_ref().map(|g| (g.scheme, g.host.as_str(), g.port, g.path.as_str()));
        assert_eq!(got_parts, expected, "{location}");
        if let Some(g) = got {
            assert_eq!(g.headers, current.headers, "headers follow the redirect");
        }
    }
}

/// A server answering each connection with the next canned response (after reading the request).
async fn serve(responses: Vec<String>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for response in responses {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(response.as_bytes()).await;
        }
    });
    addr
}

fn status(code: u16, extra: &str) -> String {
    format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n{extra}\r\n")
}

#[tokio::test]
async fn statuses_and_redirects_against_a_local_server() {
    let addr = serve(vec![status(200, "")]).await;
    let ok = get(&target("127.0.0.1", addr.port(), "/"), Duration::from_secs(2)).await.expect("get");
    assert_eq!(ok, Response { status: 200, redirect_not_followed: false });

    let addr = serve(vec![status(500, "")]).await;
    let bad = get(&target("127.0.0.1", addr.port(), "/"), Duration::from_secs(2)).await.expect("get");
    assert_eq!(bad.status, 500);

    // A same-host redirect is followed to its answer.
    let addr = serve(vec![status(301, "Location: /moved\r\n"), status(204, "")]).await;
    let followed = get(&target("127.0.0.1", addr.port(), "/"), Duration::from_secs(2)).await.expect("get");
    assert_eq!(followed, Response { status: 204, redirect_not_followed: false });

    // A redirect to another host is not followed: its 3xx is the answer.
    let addr = serve(vec![status(302, "Location: http://elsewhere.invalid/\r\n")]).await;
    let away = get(&target("127.0.0.1", addr.port(), "/"), Duration::from_secs(2)).await.expect("get");
    assert_eq!(away, Response { status: 302, redirect_not_followed: true });

    // A redirect loop stops.
    let addr = serve(vec![status(302, "Location: /again\r\n"); MAX_REDIRECTS + 1]).await;
    let looped = get(&target("127.0.0.1", addr.port(), "/"), Duration::from_secs(5)).await;
    assert!(matches!(looped, Err(HttpError::Redirects { .. })), "{looped:?}");
}

#[tokio::test]
async fn refused_and_silent_servers_fail_with_clear_messages() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let refused = get(&target("127.0.0.1", port, "/x"), Duration::from_secs(2)).await.expect_err("refused");
    let message = refused.to_string();
    assert!(
        message.starts_with(&format!("Get \"http://127.0.0.1:{port}/x\": dial tcp 127.0.0.1:{port}:")),
        "{message}"
    );

    // Accepts, never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let conn = silent.accept().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(conn);
    });
    let timeout = get(&target("127.0.0.1", port, "/"), Duration::from_millis(300)).await.expect_err("timeout");
    assert!(matches!(timeout, HttpError::Timeout { .. }), "{timeout}");
    hold.abort();
}

#[tokio::test]
async fn https_skips_certificate_verification() {
    let key = rcgen::generate_simple_self_signed(vec!["not-the-probed-host".to_string()]).expect("certificate");
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let Ok(mut tls) = acceptor.accept(tcp).await else { return };
        let mut buf = [0u8; 4096];
        let _ = tls.read(&mut buf).await;
        let _ = tls.write_all(status(200, "").as_bytes()).await;
        let _ = tls.shutdown().await;
    });
    let t = HttpGet { scheme: Scheme::Https, ..target("127.0.0.1", port, "/") };
    let got = get(&t, Duration::from_secs(5)).await.expect("https get");
    assert_eq!(got.status, 200);
}
