//! The cluster PKI: the cluster CA, the API server's serving certificate, the admin client credentials and
//! `admin.kubeconfig`, kept as PEM files in one directory that every replica may share.
//!
//! Owns the on-disk layout of that directory and all certificate issuance. Must not depend on the store,
//! the HTTP server or the other API modules (`tls` and `auth` build on this one, never the reverse).
//!
//! Layout of the directory:
//!
//! | file               | content                                                       | mode |
//! |--------------------|---------------------------------------------------------------|------|
//! | `ca.crt`, `ca.key` | cluster CA, created once and never replaced                   | 0644 / 0600 |
//! | `server.crt/.key`  | API serving certificate, reissued when a replica needs a SAN  | 0644 / 0600 |
//! | `admin.crt/.key`   | client certificate `CN=admin, O=system:masters`               | 0644 / 0600 |
//! | `admin.kubeconfig` | kubeconfig (JSON) embedding the CA and the admin credentials  | 0600 |
//! | `apiserver-kubelet-client.crt/.key` | `CN=kube-apiserver-kubelet-client, O=system:masters`: what the API server shows node agents when it proxies logs and exec | 0644 / 0600 |
//! | `.lock`            | serializes replicas that start at the same time               | 0600 |
//!
//! Certificates are built by rcgen and then finished here: the issuer field is replaced by the CA
//! certificate's exact subject bytes (so a CA made by another tool works too) and client certificates get
//! one `O` attribute per group, which rcgen's distinguished names cannot express; the result is re-signed
//! with the CA key.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber, SigningKey,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::{GeneralName, ParsedExtension};

/// The cluster CA certificate.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The cluster CA private key.
pub const CA_KEY_FILE: &str = "ca.key";
/// The API server's serving certificate.
pub const SERVER_CERT_FILE: &str = "server.crt";
/// The API server's serving key.
pub const SERVER_KEY_FILE: &str = "server.key";
/// The admin client certificate.
pub const ADMIN_CERT_FILE: &str = "admin.crt";
/// The admin client key.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// The admin kubeconfig.
pub const KUBECONFIG_FILE: &str = "admin.kubeconfig";
/// The API server's client certificate towards node agents (upstream kubeadm's file name).
pub const KUBELET_CLIENT_CERT_FILE: &str = "apiserver-kubelet-client.crt";
/// Its key.
pub const KUBELET_CLIENT_KEY_FILE: &str = "apiserver-kubelet-client.key";
/// Lock file serializing concurrent `ensure_pki` calls on one directory.
pub const LOCK_FILE: &str = ".lock";

/// Common name of the cluster CA.
pub const CA_COMMON_NAME: &str = "gantry-ca";
/// Name of the cluster, context and kubeconfig entries.
pub const CLUSTER_NAME: &str = "gantry";
/// User name of the admin client certificate.
pub const ADMIN_USER: &str = "admin";
/// Group of the admin client certificate (full access in upstream RBAC).
pub const ADMIN_GROUP: &str = "system:masters";
/// User name of the API server's client certificate towards node agents (upstream kubeadm's).
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
/// Hosts every serving certificate is valid for, besides the requested ones.
pub const DEFAULT_SERVER_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 60 * 60);
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// A serving certificate closer than this to its expiry is reissued.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// `notBefore` is backdated by this much so peers with a slightly late clock accept new certificates.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;

/// The PKI of one replica, as returned by [`ensure_pki`].
#[derive(Clone)]
pub struct Pki {
    /// The PKI directory.
    pub dir: PathBuf,
    /// PEM of the cluster CA certificate.
    pub ca_cert_pem: String,
    /// PEM of the serving certificate (valid for this replica's hosts).
    pub server_cert_pem: String,
    /// PEM (PKCS#8) of the serving key.
    pub server_key_pem: String,
    /// Path of `admin.kubeconfig`.
    pub kubeconfig_path: PathBuf,
    /// PEM of the client certificate the API server presents to node agents.
    pub kubelet_client_cert_pem: String,
    /// PEM (PKCS#8) of its key.
    pub kubelet_client_key_pem: String,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .field("kubeconfig_path", &self.kubeconfig_path)
            .field("server_key_pem", &"[elided]")
            .field("kubelet_client_key_pem", &"[elided]")
            .finish_non_exhaustive()
    }
}

/// Errors of the PKI directory and certificate issuance.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot lock {}: {source}", path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{} is not a valid certificate: {reason}", path.display())]
    InvalidCertificate { path: PathBuf, reason: String },
    #[error("{} is not a valid private key: {reason}", path.display())]
    InvalidKey { path: PathBuf, reason: String },
    #[error("private key {} does not belong to certificate {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{} exists but {} is missing; restore it, or remove both to start over", present.display(), missing.display())]
    Incomplete { present: PathBuf, missing: PathBuf },
    #[error("{} has no ca but still holds {}; refusing to create a new ca next to credentials of an old one", dir.display(), stale.display())]
    StaleCredentials { dir: PathBuf, stale: PathBuf },
    #[error("{} holds no cluster ca ({CA_CERT_FILE}, {CA_KEY_FILE})", dir.display())]
    MissingCa { dir: PathBuf },
    #[error("invalid server host {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },
    #[error("invalid client identity: {reason}")]
    InvalidIdentity { reason: String },
    #[error("cannot issue {what}: {source}")]
    Issue { what: &'static str, source: rcgen::Error },
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error("cannot build the tls client certificate verifier: {source}")]
    ClientVerifier { source: rustls::server::VerifierBuilderError },
    #[error("cannot build the tls server config: {source}")]
    TlsConfig { source: rustls::Error },
}

/// Makes sure `dir` holds a cluster CA, a serving certificate valid for every host of `server_hosts` (plus
/// [`DEFAULT_SERVER_HOSTS`]), admin client credentials and `admin.kubeconfig` pointing at `api_server_url`.
///
/// Creates what is missing and never replaces the CA or the admin credentials; the serving certificate is
/// reissued, with the union of its old and the requested hosts, when it lacks a host, does not match its
/// key or the CA, or expires within 30 days. Concurrent callers (replicas sharing `dir`) are serialized by
/// an exclusive lock on `dir/.lock`.
pub fn ensure_pki(dir: &Path, server_hosts: &[String], api_server_url: &str) -> Result<Pki, PkiError> {
    let requested = server_hosts.iter().map(|h| Host::parse(h)).collect::<Result<BTreeSet<_>, _>>()?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PkiError::CreateDir { path: dir.to_owned(), source })?;
    let _lock = lock_dir_exclusive(dir)?;

    let ca = match load_ca(dir)? {
        Some(ca) => ca,
        None => create_ca(dir)?,
    };
    let (server_cert_pem, server_key_pem) = ensure_server_cert(dir, &ca, &requested)?;
    ensure_admin(dir, &ca, api_server_url)?;
    let (kubelet_client_cert_pem, kubelet_client_key_pem) = ensure_client_pair(
        dir,
        &ca,
        KUBELET_CLIENT_CERT_FILE,
        KUBELET_CLIENT_KEY_FILE,
        KUBELET_CLIENT_USER,
        &[ADMIN_GROUP.to_owned()],
    )?;

    Ok(Pki {
        dir: dir.to_owned(),
        ca_cert_pem: ca.cert_pem,
        server_cert_pem,
        server_key_pem,
        kubeconfig_path: dir.join(KUBECONFIG_FILE),
        kubelet_client_cert_pem,
        kubelet_client_key_pem,
    })
}

/// Issues a client certificate for `user` (subject CN) in `groups` (one subject O each), signed by the CA in
/// `pki_dir`, valid for one year. Returns `(certificate PEM, PKCS#8 key PEM)`; nothing is written to disk.
pub fn issue_client_cert(pki_dir: &Path, user: &str, groups: &[String]) -> Result<(String, String), PkiError> {
    if !pki_dir.is_dir() {
        return Err(PkiError::MissingCa { dir: pki_dir.to_owned() });
    }
    let ca = {
        let _lock = lock_dir_shared(pki_dir)?;
        load_ca(pki_dir)?.ok_or_else(|| PkiError::MissingCa { dir: pki_dir.to_owned() })?
    };
    issue_client(&ca, user, groups)
}

// ---------------------------------------------------------------------------------------------------------
// The CA

/// A loaded CA: its certificate and what issuing needs from it.
struct Ca {
    cert_pem: String,
    /// DER of the certificate's subject Name, copied verbatim into the issuer field of issued certificates.
    subject_der: Vec<u8>,
    /// Subject key identifier, copied into the authority key identifier of issued certificates.
    key_id: Option<Vec<u8>>,
    key: KeyPair,
}

/// Loads `ca.crt` + `ca.key`; `None` when neither exists. A half-present, corrupt or mismatched pair is an
/// error: the CA is never silently replaced.
fn load_ca(dir: &Path) -> Result<Option<Ca>, PkiError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let (cert_bytes, key_bytes) = match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(PkiError::Incomplete { present: cert_path, missing: key_path }),
        (None, Some(_)) => return Err(PkiError::Incomplete { present: key_path, missing: cert_path }),
        (Some(cert), Some(key)) => (cert, key),
    };
    let info = CertInfo::parse(&cert_path, &cert_bytes)?;
    if !info.is_ca {
        return Err(invalid_cert(&cert_path, "not a ca certificate (basicConstraints ca is not true)"));
    }
    if info.not_after < unix_now().as_secs() as i64 {
        tracing::warn!(path = %cert_path.display(), "the cluster ca certificate has expired");
    }
    let key = parse_key(&key_path, &key_bytes)?;
    if key.public_key_raw() != info.public_key {
        return Err(PkiError::KeyMismatch { cert: cert_path, key: key_path });
    }
    Ok(Some(Ca {
        cert_pem: pem_string(&cert_path, cert_bytes)?,
        subject_der: info.subject_der,
        key_id: info.key_id,
        key,
    }))
}

/// Creates and writes a new CA, then loads it back through [`load_ca`].
fn create_ca(dir: &Path) -> Result<Ca, PkiError> {
    for stale in [ADMIN_CERT_FILE, ADMIN_KEY_FILE, KUBECONFIG_FILE, KUBELET_CLIENT_CERT_FILE, KUBELET_CLIENT_KEY_FILE] {
        let path = dir.join(stale);
        if path.try_exists().map_err(|source| PkiError::Read { path: path.clone(), source })? {
            return Err(PkiError::StaleCredentials { dir: dir.to_owned(), stale: path });
        }
    }
    let key = KeyPair::generate().map_err(|source| PkiError::Issue { what: "ca key", source })?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(random_serial());
    set_validity(&mut params, CA_VALIDITY);
    let cert = params.self_signed(&key).map_err(|source| PkiError::Issue { what: "ca certificate", source })?;

    // Key first: a crash in between leaves an orphan key, which load_ca reports instead of ignoring.
    write_atomic(&dir.join(CA_KEY_FILE), key.serialize_pem().as_bytes(), KEY_MODE)?;
    write_atomic(&dir.join(CA_CERT_FILE), cert.pem().as_bytes(), CERT_MODE)?;
    tracing::info!(dir = %dir.display(), "created cluster ca");
    load_ca(dir)?.ok_or_else(|| PkiError::MissingCa { dir: dir.to_owned() })
}

// ---------------------------------------------------------------------------------------------------------
// Serving certificate

/// Returns the serving certificate and key PEM, reissuing them when needed (see [`ensure_pki`]).
fn ensure_server_cert(dir: &Path, ca: &Ca, requested: &BTreeSet<Host>) -> Result<(String, String), PkiError> {
    let cert_path = dir.join(SERVER_CERT_FILE);
    let key_path = dir.join(SERVER_KEY_FILE);
    let mut wanted = requested.clone();
    for host in DEFAULT_SERVER_HOSTS {
        wanted.insert(Host::parse(host)?);
    }

    let reason = match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert_bytes), Some(key_bytes)) => {
            let info = CertInfo::parse(&cert_path, &cert_bytes)?;
            let key = parse_key(&key_path, &key_bytes)?;
            let issued_by_ca = info.issuer_der == ca.subject_der
                && match (&info.authority_key_id, &ca.key_id) {
                    (Some(aki), Some(ski)) => aki == ski,
                    _ => true,
                };
            let renew_at = unix_now().saturating_add(RENEW_BEFORE).as_secs() as i64;
            let have: BTreeSet<Host> = info.hosts.iter().cloned().collect();
            let missing: Vec<String> = wanted.difference(&have).map(Host::to_string).collect();
            let reason = if key.public_key_raw() != info.public_key {
                "key does not match the certificate".to_owned()
            } else if !issued_by_ca {
                "not issued by the cluster ca".to_owned()
            } else if info.not_after < renew_at {
                "expires within 30 days".to_owned()
            } else if !missing.is_empty() {
                format!("lacks {}", missing.join(", "))
            } else {
                return Ok((pem_string(&cert_path, cert_bytes)?, pem_string(&key_path, key_bytes)?));
            };
            if issued_by_ca {
                wanted.extend(info.hosts);
            }
            reason
        }
        _ => "missing".to_owned(),
    };

    let mut params = CertificateParams::default();
    params.distinguished_name = common_name("gantry-apiserver");
    params.subject_alt_names = wanted.iter().map(Host::to_san).collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (cert_pem, key_pem) = issue_leaf(ca, params, None, "serving certificate")?;
    write_atomic(&key_path, key_pem.as_bytes(), KEY_MODE)?;
    write_atomic(&cert_path, cert_pem.as_bytes(), CERT_MODE)?;
    let hosts: Vec<String> = wanted.iter().map(Host::to_string).collect();
    tracing::info!(path = %cert_path.display(), ?hosts, %reason, "issued api serving certificate");
    Ok((cert_pem, key_pem))
}

// ---------------------------------------------------------------------------------------------------------
// Admin credentials and kubeconfig

/// Creates the admin credentials when neither file exists, validates them otherwise, and writes
/// `admin.kubeconfig` when it is missing. Existing admin files are never overwritten.
fn ensure_admin(dir: &Path, ca: &Ca, api_server_url: &str) -> Result<(), PkiError> {
    let (cert_pem, key_pem) =
        ensure_client_pair(dir, ca, ADMIN_CERT_FILE, ADMIN_KEY_FILE, ADMIN_USER, &[ADMIN_GROUP.to_owned()])?;

    let kubeconfig_path = dir.join(KUBECONFIG_FILE);
    if kubeconfig_path.try_exists().map_err(|source| PkiError::Read { path: kubeconfig_path.clone(), source })? {
        return Ok(());
    }
    let document = kubeconfig(api_server_url, &ca.cert_pem, &cert_pem, &key_pem);
    let mut bytes = serde_json::to_vec_pretty(&document)
        .map_err(|e| PkiError::Encode { what: "kubeconfig", reason: e.to_string() })?;
    bytes.push(b'\n');
    write_atomic(&kubeconfig_path, &bytes, KEY_MODE)?;
    tracing::info!(path = %kubeconfig_path.display(), server = api_server_url, "wrote admin kubeconfig");
    Ok(())
}

/// Issues client credentials `cert_file`/`key_file` for `user` in `groups` when neither file exists,
/// validates them otherwise (existing files are never overwritten), and returns their PEM.
fn ensure_client_pair(
    dir: &Path,
    ca: &Ca,
    cert_file: &str,
    key_file: &str,
    user: &str,
    groups: &[String],
) -> Result<(String, String), PkiError> {
    let cert_path = dir.join(cert_file);
    let key_path = dir.join(key_file);
    let pair = match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert_bytes), Some(key_bytes)) => {
            let info = CertInfo::parse(&cert_path, &cert_bytes)?;
            let key = parse_key(&key_path, &key_bytes)?;
            if key.public_key_raw() != info.public_key {
                return Err(PkiError::KeyMismatch { cert: cert_path, key: key_path });
            }
            if info.issuer_der != ca.subject_der {
                tracing::warn!(path = %cert_path.display(), "{cert_file} was not issued by the cluster ca");
            }
            (pem_string(&cert_path, cert_bytes)?, pem_string(&key_path, key_bytes)?)
        }
        (Some(_), None) => return Err(PkiError::Incomplete { present: cert_path, missing: key_path }),
        (None, Some(_)) => return Err(PkiError::Incomplete { present: key_path, missing: cert_path }),
        (None, None) => {
            let (cert_pem, key_pem) = issue_client(ca, user, groups)?;
            write_atomic(&key_path, key_pem.as_bytes(), KEY_MODE)?;
            write_atomic(&cert_path, cert_pem.as_bytes(), CERT_MODE)?;
            tracing::info!(path = %cert_path.display(), user, "issued client certificate");
            (cert_pem, key_pem)
        }
    };
    Ok(pair)
}

/// A kubeconfig document (JSON, which kubectl reads as YAML) for cluster, context and user `gantry`/`admin`.
fn kubeconfig(server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> serde_json::Value {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CLUSTER_NAME,
            "cluster": { "server": server, "certificate-authority-data": b64(ca_pem) },
        }],
        "users": [{
            "name": ADMIN_USER,
            "user": { "client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem) },
        }],
        "contexts": [{
            "name": CLUSTER_NAME,
            "context": { "cluster": CLUSTER_NAME, "user": ADMIN_USER },
        }],
        "current-context": CLUSTER_NAME,
        "preferences": {},
    })
}

// ---------------------------------------------------------------------------------------------------------
// Issuing

/// Issues a client certificate (`CN=user`, one `O` per group, clientAuth).
fn issue_client(ca: &Ca, user: &str, groups: &[String]) -> Result<(String, String), PkiError> {
    if user.is_empty() {
        return Err(PkiError::InvalidIdentity { reason: "user name must not be empty".to_owned() });
    }
    if groups.iter().any(String::is_empty) {
        return Err(PkiError::InvalidIdentity { reason: "group names must not be empty".to_owned() });
    }
    let mut attributes: Vec<(&[u8], &str)> = groups.iter().map(|g| (OID_ORGANIZATION, g.as_str())).collect();
    attributes.push((OID_COMMON_NAME, user));
    let subject = der::name(&attributes);

    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(user);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    issue_leaf(ca, params, Some(&subject), "client certificate")
}

/// Signs `params` with a fresh key as a one-year leaf of `ca`; `subject` (a DER Name) replaces the subject
/// rcgen wrote. Returns `(certificate PEM, PKCS#8 key PEM)`.
fn issue_leaf(
    ca: &Ca,
    mut params: CertificateParams,
    subject: Option<&[u8]>,
    what: &'static str,
) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate().map_err(|source| PkiError::Issue { what, source })?;
    params.serial_number = Some(random_serial());
    set_validity(&mut params, LEAF_VALIDITY);
    // rcgen only needs the issuer's key identifier (for the authority key identifier extension) and a
    // distinguished name, which `finish_certificate` replaces with the CA's exact subject bytes.
    let mut issuer_params = CertificateParams::default();
    issuer_params.distinguished_name = common_name(CA_COMMON_NAME);
    if let Some(key_id) = &ca.key_id {
        params.use_authority_key_identifier_extension = true;
        issuer_params.key_identifier_method = KeyIdMethod::PreSpecified(key_id.clone());
    }
    let issuer = Issuer::new(issuer_params, &ca.key);
    let cert = params.signed_by(&key, &issuer).map_err(|source| PkiError::Issue { what, source })?;
    let der = finish_certificate(cert.der(), &ca.subject_der, subject, &ca.key)
        .map_err(|reason| PkiError::Encode { what, reason })?;
    Ok((pem_encode("CERTIFICATE", &der), key.serialize_pem()))
}

/// Replaces the issuer (and optionally the subject) Name of a v3 certificate and re-signs it with `ca_key`,
/// keeping the signature algorithm rcgen chose for that key.
fn finish_certificate(cert: &[u8], issuer: &[u8], subject: Option<&[u8]>, ca_key: &KeyPair) -> Result<Vec<u8>, String> {
    let malformed = || "rcgen produced a malformed certificate".to_owned();
    let (certificate, rest) = der::split(cert).ok_or_else(malformed)?;
    if certificate.tag != der::SEQUENCE || !rest.is_empty() {
        return Err(malformed());
    }
    let (tbs, rest) = der::split(certificate.content).ok_or_else(malformed)?;
    let (signature_algorithm, _) = der::split(rest).ok_or_else(malformed)?;
    if tbs.tag != der::SEQUENCE {
        return Err(malformed());
    }
    // TBSCertificate: [0] version, serialNumber, signature, issuer, validity, subject, spki, [3] extensions.
    let mut fields = Vec::new();
    let mut rest = tbs.content;
    while !rest.is_empty() {
        let (field, next) = der::split(rest).ok_or_else(malformed)?;
        fields.push(field.whole);
        rest = next;
    }
    if fields.len() < 7 || fields[0].first() != Some(&der::VERSION_TAG) {
        return Err(malformed());
    }
    fields[3] = issuer;
    if let Some(subject) = subject {
        fields[5] = subject;
    }
    let tbs = der::tlv(der::SEQUENCE, &fields.concat());
    let signature = ca_key.sign(&tbs).map_err(|e| format!("cannot sign: {e}"))?;
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(&signature);
    Ok(der::tlv(
        der::SEQUENCE,
        &[tbs.as_slice(), signature_algorithm.whole, &der::tlv(der::BIT_STRING, &bits)].concat(),
    ))
}

const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

fn common_name(cn: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, cn);
    name
}

fn random_serial() -> SerialNumber {
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f) | 0x40; // positive, and no leading zero byte
    SerialNumber::from_slice(&serial)
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let now = unix_now();
    params.not_before = epoch + now.saturating_sub(BACKDATE);
    params.not_after = epoch + now + validity;
}

// ---------------------------------------------------------------------------------------------------------
// Parsing

/// A SAN of the serving certificate, normalized for comparison.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Host {
    Ip(IpAddr),
    Dns(String),
}

impl Host {
    /// Parses a requested host: an IP address (optionally in brackets) or a DNS name (case-insensitive).
    fn parse(host: &str) -> Result<Host, PkiError> {
        let invalid = |reason: &str| PkiError::InvalidHost { host: host.to_owned(), reason: reason.to_owned() };
        let trimmed = host.trim();
        let unbracketed = trimmed.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(trimmed);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        let name = trimmed.strip_suffix('.').unwrap_or(trimmed).to_ascii_lowercase();
        if name.is_empty() {
            return Err(invalid("empty"));
        }
        if name.len() > 253 {
            return Err(invalid("longer than 253 characters"));
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'*') {
            return Err(invalid("neither an ip address nor a dns name"));
        }
        if name.split('.').any(str::is_empty) {
            return Err(invalid("empty dns label"));
        }
        Ok(Host::Dns(name))
    }

    fn to_san(&self) -> Result<SanType, PkiError> {
        match self {
            Host::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            Host::Dns(name) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| PkiError::InvalidHost { host: name.clone(), reason: e.to_string() }),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Dns(name) => f.write_str(name),
        }
    }
}

/// What this module needs from a parsed certificate.
struct CertInfo {
    subject_der: Vec<u8>,
    issuer_der: Vec<u8>,
    key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
    is_ca: bool,
    /// The subjectPublicKey bits, comparable with `KeyPair::public_key_raw`.
    public_key: Vec<u8>,
    /// DNS and IP SANs.
    hosts: Vec<Host>,
    /// `notAfter`, seconds since the Unix epoch.
    not_after: i64,
}

impl CertInfo {
    /// Parses the first certificate of a PEM file.
    fn parse(path: &Path, pem: &[u8]) -> Result<CertInfo, PkiError> {
        let der = CertificateDer::from_pem_slice(pem).map_err(|e| invalid_cert(path, &e.to_string()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| invalid_cert(path, &e.to_string()))?;
        let mut key_id = None;
        let mut authority_key_id = None;
        for extension in cert.extensions() {
            match extension.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => key_id = Some(id.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
                }
                _ => {}
            }
        }
        let san = cert.subject_alternative_name().map_err(|e| invalid_cert(path, &format!("subjectAltName: {e}")))?;
        let hosts = san
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(dns) => Some(Host::Dns(dns.to_ascii_lowercase())),
                        GeneralName::IPAddress(bytes) => match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| Host::Ip(IpAddr::from(b))),
                            16 => <[u8; 16]>::try_from(*bytes).ok().map(|b| Host::Ip(IpAddr::from(b))),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(CertInfo {
            subject_der: cert.subject().as_raw().to_vec(),
            issuer_der: cert.issuer().as_raw().to_vec(),
            key_id,
            authority_key_id,
            is_ca: cert.is_ca(),
            public_key: cert.public_key().subject_public_key.data.to_vec(),
            hosts,
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

fn invalid_cert(path: &Path, reason: &str) -> PkiError {
    PkiError::InvalidCertificate { path: path.to_owned(), reason: reason.to_owned() }
}

fn parse_key(path: &Path, pem: &[u8]) -> Result<KeyPair, PkiError> {
    let invalid = |reason: String| PkiError::InvalidKey { path: path.to_owned(), reason };
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| invalid(e.to_string()))?;
    KeyPair::try_from(&der).map_err(|e| invalid(e.to_string()))
}

/// The contents of a PEM file that already parsed, as a string.
fn pem_string(path: &Path, bytes: Vec<u8>) -> Result<String, PkiError> {
    String::from_utf8(bytes).map_err(|_| PkiError::Read {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, "not utf-8 text"),
    })
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    for (i, c) in b64.chars().enumerate() {
        if i > 0 && i % 64 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push_str(&format!("\n-----END {label}-----\n"));
    out
}

mod der;
mod files;

use files::{lock_dir_exclusive, lock_dir_shared, read_optional, write_atomic};

#[cfg(test)]
mod tests;
