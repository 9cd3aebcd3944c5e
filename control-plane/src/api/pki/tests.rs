//! The PKI directory on real files: creation, reuse and SAN reissue, corrupt or mismatched material
//! refused, client certificates with every group, concurrent replicas sharing one CA.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn hosts(list: &[&str]) -> Vec<String> {
    list.iter().map(|h| (*h).to_owned()).collect()
}

fn san_hosts(pem: &str) -> BTreeSet<Host> {
    CertInfo::parse(Path::new("test.crt"), pem.as_bytes()).expect("certificate parses").hosts.into_iter().collect()
}

fn subject(pem: &str) -> (Vec<String>, Vec<String>) {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    let common_names = cert.subject().iter_common_name().map(|a| a.as_str().expect("utf-8").to_owned()).collect();
    let organizations = cert.subject().iter_organization().map(|a| a.as_str().expect("utf-8").to_owned()).collect();
    (common_names, organizations)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn fresh_dir_creates_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    let pki = ensure_pki(&dir, &hosts(&["10.0.0.7", "cp-1.example"]), "https://10.0.0.7:6443").expect("pki");

    for file in [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE, ADMIN_CERT_FILE, ADMIN_KEY_FILE] {
        assert!(dir.join(file).is_file(), "{file} exists");
    }
    for key in [CA_KEY_FILE, SERVER_KEY_FILE, ADMIN_KEY_FILE, KUBECONFIG_FILE] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key} is private");
    }
    assert_eq!(pki.dir, dir);
    assert_eq!(pki.ca_cert_pem, fs::read_to_string(dir.join(CA_CERT_FILE)).expect("ca.crt"));
    assert_eq!(pki.server_cert_pem, fs::read_to_string(dir.join(SERVER_CERT_FILE)).expect("server.crt"));
    assert_eq!(pki.server_key_pem, fs::read_to_string(dir.join(SERVER_KEY_FILE)).expect("server.key"));

    let ca = CertInfo::parse(Path::new("ca"), pki.ca_cert_pem.as_bytes()).expect("ca parses");
    assert!(ca.is_ca);
    assert_eq!(subject(&pki.ca_cert_pem).0, vec![CA_COMMON_NAME]);
    let ten_years = unix_now().as_secs() as i64 + 3649 * 24 * 3600;
    assert!(ca.not_after > ten_years, "ca is valid for ten years");

    let server = CertInfo::parse(Path::new("server"), pki.server_cert_pem.as_bytes()).expect("server parses");
    assert!(!server.is_ca);
    assert_eq!(server.issuer_der, ca.subject_der);
    assert_eq!(server.authority_key_id, ca.key_id);
    let expected: BTreeSet<Host> = ["10.0.0.7", "cp-1.example", "localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|h| Host::parse(h).expect("host"))
        .collect();
    assert_eq!(san_hosts(&pki.server_cert_pem), expected);

    let admin_pem = fs::read_to_string(dir.join(ADMIN_CERT_FILE)).expect("admin.crt");
    assert_eq!(subject(&admin_pem), (vec!["admin".to_owned()], vec!["system:masters".to_owned()]));
    let kubelet_client = fs::read_to_string(dir.join(KUBELET_CLIENT_CERT_FILE)).expect("kubelet client cert");
    assert_eq!(kubelet_client, pki.kubelet_client_cert_pem);
    assert_eq!(
        subject(&kubelet_client),
        (vec!["kube-apiserver-kubelet-client".to_owned()], vec!["system:masters".to_owned()])
    );
    assert_eq!(mode(&dir.join(KUBELET_CLIENT_KEY_FILE)), 0o600);
    let again = ensure_pki(&dir, &hosts(&["10.0.0.8"]), "https://10.0.0.8:6443").expect("second replica");
    assert_eq!(again.kubelet_client_cert_pem, pki.kubelet_client_cert_pem, "created once, reused by every replica");

    let kubeconfig: serde_json::Value =
        serde_json::from_slice(&fs::read(&pki.kubeconfig_path).expect("kubeconfig")).expect("kubeconfig is json");
    let b64 = |v: &serde_json::Value| {
        let text = v.as_str().expect("string");
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(text).expect("base64")).expect("utf-8")
    };
    assert_eq!(kubeconfig["current-context"], "gantry");
    assert_eq!(kubeconfig["clusters"][0]["name"], "gantry");
    assert_eq!(kubeconfig["clusters"][0]["cluster"]["server"], "https://10.0.0.7:6443");
    assert_eq!(b64(&kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]), pki.ca_cert_pem);
    assert_eq!(kubeconfig["users"][0]["name"], "admin");
    assert_eq!(b64(&kubeconfig["users"][0]["user"]["client-certificate-data"]), admin_pem);
    assert_eq!(
        b64(&kubeconfig["users"][0]["user"]["client-key-data"]),
        fs::read_to_string(dir.join(ADMIN_KEY_FILE)).expect("admin.key")
    );
    assert_eq!(kubeconfig["contexts"][0]["name"], "gantry");
    assert_eq!(kubeconfig["contexts"][0]["context"]["cluster"], "gantry");
    assert_eq!(kubeconfig["contexts"][0]["context"]["user"], "admin");

    let leftovers: Vec<_> = fs::read_dir(&dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left: {leftovers:?}");
}

#[test]
fn second_call_reuses_ca_and_adds_missing_san() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let first = ensure_pki(dir, &hosts(&["10.0.0.1"]), "https://10.0.0.1:6443").expect("first");
    let read = |f: &str| fs::read(dir.join(f)).expect("read");
    let (ca_crt, ca_key, admin_crt, admin_key, kubeconfig) =
        (read(CA_CERT_FILE), read(CA_KEY_FILE), read(ADMIN_CERT_FILE), read(ADMIN_KEY_FILE), read(KUBECONFIG_FILE));

    // Same hosts: nothing changes.
    let same = ensure_pki(dir, &hosts(&["10.0.0.1"]), "https://10.0.0.1:6443").expect("same");
    assert_eq!(same.server_cert_pem, first.server_cert_pem);
    assert_eq!(same.server_key_pem, first.server_key_pem);

    // Another replica on another address: the serving certificate gains its host, keeps the old one.
    let second = ensure_pki(dir, &hosts(&["10.0.0.2", "CP-2.Example"]), "https://10.0.0.2:6443").expect("second");
    assert_ne!(second.server_cert_pem, first.server_cert_pem);
    let sans = san_hosts(&second.server_cert_pem);
    for host in ["10.0.0.1", "10.0.0.2", "cp-2.example", "localhost", "127.0.0.1", "::1"] {
        assert!(sans.contains(&Host::parse(host).expect("host")), "{host} in {sans:?}");
    }
    assert_eq!(second.ca_cert_pem, first.ca_cert_pem);
    assert_eq!(read(CA_CERT_FILE), ca_crt);
    assert_eq!(read(CA_KEY_FILE), ca_key);
    assert_eq!(read(ADMIN_CERT_FILE), admin_crt);
    assert_eq!(read(ADMIN_KEY_FILE), admin_key);
    assert_eq!(read(KUBECONFIG_FILE), kubeconfig);
    assert_eq!(fs::read_to_string(dir.join(SERVER_CERT_FILE)).expect("server.crt"), second.server_cert_pem);

    // A missing kubeconfig is rewritten from the existing credentials.
    fs::remove_file(dir.join(KUBECONFIG_FILE)).expect("remove kubeconfig");
    ensure_pki(dir, &hosts(&[]), "https://10.0.0.1:6443").expect("third");
    assert_eq!(read(KUBECONFIG_FILE), kubeconfig);
}

#[test]
fn missing_or_mismatched_server_cert_is_reissued() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let first = ensure_pki(dir, &hosts(&["10.0.0.1"]), "https://10.0.0.1:6443").expect("first");
    fs::remove_file(dir.join(SERVER_CERT_FILE)).expect("remove");
    let again = ensure_pki(dir, &hosts(&["10.0.0.1"]), "https://10.0.0.1:6443").expect("again");
    assert_ne!(again.server_cert_pem, first.server_cert_pem);
    assert!(san_hosts(&again.server_cert_pem).contains(&Host::parse("10.0.0.1").expect("host")));

    // A key that does not match the certificate (e.g. a crash between the two renames).
    fs::copy(dir.join(ADMIN_KEY_FILE), dir.join(SERVER_KEY_FILE)).expect("copy");
    let fixed = ensure_pki(dir, &hosts(&[]), "https://10.0.0.1:6443").expect("fixed");
    assert_ne!(fixed.server_cert_pem, again.server_cert_pem);
    let info = CertInfo::parse(Path::new("server"), fixed.server_cert_pem.as_bytes()).expect("parses");
    let key = parse_key(Path::new("server.key"), fixed.server_key_pem.as_bytes()).expect("key");
    assert_eq!(key.public_key_raw(), info.public_key);
}

#[test]
fn corrupt_ca_is_an_error_and_left_untouched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    ensure_pki(dir, &hosts(&[]), "https://127.0.0.1:6443").expect("first");
    let corrupt = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    fs::write(dir.join(CA_CERT_FILE), corrupt).expect("corrupt ca");
    let key_before = fs::read(dir.join(CA_KEY_FILE)).expect("ca.key");

    let err = ensure_pki(dir, &hosts(&[]), "https://127.0.0.1:6443").expect_err("corrupt ca must fail");
    assert!(matches!(&err, PkiError::InvalidCertificate { path, .. } if path.ends_with(CA_CERT_FILE)), "{err}");
    let message = err.to_string();
    assert!(message.contains("ca.crt is not a valid certificate"), "{message}");
    assert_eq!(fs::read(dir.join(CA_CERT_FILE)).expect("ca.crt"), corrupt);
    assert_eq!(fs::read(dir.join(CA_KEY_FILE)).expect("ca.key"), key_before);

    // Not PEM at all.
    fs::write(dir.join(CA_CERT_FILE), b"garbage").expect("garbage");
    let err = ensure_pki(dir, &hosts(&[]), "https://127.0.0.1:6443").expect_err("garbage must fail");
    assert!(matches!(err, PkiError::InvalidCertificate { .. }), "{err}");
    assert_eq!(fs::read(dir.join(CA_CERT_FILE)).expect("ca.crt"), b"garbage");
}

#[test]
fn half_present_or_mismatched_ca_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    ensure_pki(dir, &hosts(&[]), "https://127.0.0.1:6443").expect("first");

    fs::copy(dir.join(ADMIN_KEY_FILE), dir.join(CA_KEY_FILE)).expect("swap key");
    let err = ensure_pki(dir, &hosts(&[]), "https://127.0.0.1:6443").expect_err("mismatch");
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");

    fs::remove_file(dir.join(CA_KEY_FILE)).expect("remove key");
    let err = ensure_pki(dir, &hosts(&[]), "https://127.0.0.1:6443").expect_err("incomplete");
    assert!(matches!(err, PkiError::Incomplete { .. }), "{err}");
    assert!(!dir.join(CA_KEY_FILE).exists(), "no new ca key was minted");

    // Both CA files gone but the admin credentials of the old CA remain.
    fs::remove_file(dir.join(CA_CERT_FILE)).expect("remove cert");
    let err = ensure_pki(dir, &hosts(&[]), "https://127.0.0.1:6443").expect_err("stale");
    assert!(matches!(err, PkiError::StaleCredentials { .. }), "{err}");
    assert!(!dir.join(CA_CERT_FILE).exists());
}

#[test]
fn invalid_host_is_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = ensure_pki(tmp.path(), &hosts(&["bad host"]), "https://x:6443").expect_err("invalid host");
    assert!(matches!(err, PkiError::InvalidHost { .. }), "{err}");
    assert!(!tmp.path().join(CA_CERT_FILE).exists(), "validation happens before anything is written");
    assert_eq!(Host::parse("[::1]").expect("bracketed ipv6"), Host::Ip("::1".parse().expect("ip")));
    assert_eq!(Host::parse("Node-1.Example.").expect("dns"), Host::Dns("node-1.example".to_owned()));
    assert!(Host::parse("a..b").is_err());
    assert!(Host::parse("").is_err());
}

#[test]
fn client_cert_carries_user_and_every_group() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let pki = ensure_pki(dir, &hosts(&[]), "https://127.0.0.1:6443").expect("pki");
    let groups = vec!["system:nodes".to_owned(), "team-a".to_owned(), "team, b".to_owned()];
    let (cert_pem, key_pem) = issue_client_cert(dir, "system:node:n1", &groups).expect("client cert");
    assert_eq!(subject(&cert_pem), (vec!["system:node:n1".to_owned()], groups));
    let info = CertInfo::parse(Path::new("client"), cert_pem.as_bytes()).expect("parses");
    let ca = CertInfo::parse(Path::new("ca"), pki.ca_cert_pem.as_bytes()).expect("ca");
    assert_eq!(info.issuer_der, ca.subject_der);
    let key = parse_key(Path::new("client.key"), key_pem.as_bytes()).expect("key");
    assert_eq!(key.public_key_raw(), info.public_key);

    let err = issue_client_cert(dir, "", &[]).expect_err("empty user");
    assert!(matches!(err, PkiError::InvalidIdentity { .. }), "{err}");
    let err = issue_client_cert(&tmp.path().join("nope"), "u", &[]).expect_err("no ca");
    assert!(matches!(err, PkiError::MissingCa { .. }), "{err}");
}

#[test]
fn concurrent_replicas_share_one_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_owned();
    let handles: Vec<_> = (1..=4)
        .map(|i| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                ensure_pki(&dir, &[format!("10.0.0.{i}")], &format!("https://10.0.0.{i}:6443")).expect("pki")
            })
        })
        .collect();
    let results: Vec<Pki> = handles.into_iter().map(|h| h.join().expect("thread")).collect();
    assert!(results.iter().all(|p| p.ca_cert_pem == results[0].ca_cert_pem), "one ca for all");
    let last = ensure_pki(&dir, &[], "https://10.0.0.1:6443").expect("final");
    let sans = san_hosts(&last.server_cert_pem);
    for i in 1..=4 {
        assert!(sans.contains(&Host::parse(&format!("10.0.0.{i}")).expect("host")), "10.0.0.{i} in {sans:?}");
    }
}

#[test]
fn der_length_encoding_round_trips() {
    for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
        let content = vec![7u8; len];
        let encoded = der::tlv(der::SEQUENCE, &content);
        let (tlv, rest) = der::split(&encoded).expect("split");
        assert_eq!((tlv.tag, tlv.content.len(), tlv.whole.len(), rest.len()), (der::SEQUENCE, len, encoded.len(), 0));
    }
    assert!(der::split(&[0x30, 0x05, 1, 2]).is_none(), "truncated content");
}
