//! Authentication: who is calling the API, from a verified client certificate or a static bearer token.
//!
//! Owns the static token file format (kube-apiserver `--token-auth-file`) and the mapping of credentials to
//! [`UserInfo`]. Must not depend on the HTTP server, the store or authorization: the server passes in the
//! peer certificate rustls already verified and the raw `Authorization` header, and decides what a `None`
//! (401) means.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Group added to every authenticated user, as upstream does.
pub const GROUP_AUTHENTICATED: &str = "system:authenticated";

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// User name (certificate CN, or token file column 2).
    pub name: String,
    /// User UID (token file column 3; empty for certificates).
    pub uid: String,
    /// Groups (certificate O attributes, or token file column 4), then `system:authenticated`.
    pub groups: Vec<String>,
}

/// Errors of loading the authenticator's configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read token file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("token file {} line {line}: {reason}", path.display())]
    Malformed { path: PathBuf, line: usize, reason: String },
}

/// Maps request credentials to a [`UserInfo`]: x509 client certificate first, then static bearer tokens.
#[derive(Clone, Default)]
pub struct Authenticator {
    tokens: Vec<TokenEntry>,
}

#[derive(Clone)]
struct TokenEntry {
    token: Vec<u8>,
    user: UserInfo,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").field("tokens", &self.tokens.len()).finish()
    }
}

impl Authenticator {
    /// Builds an authenticator, reading the static token file when one is given.
    ///
    /// Token file format (as kube-apiserver `--token-auth-file`): one CSV record per line,
    /// `token,user,uid[,"group1,group2"]`; blank lines and lines starting with `#` are ignored. A record
    /// with an empty token is skipped with a warning and a repeated token replaces the earlier one (both as
    /// upstream); anything else malformed is an error naming the line.
    pub fn new(token_file: Option<&Path>) -> Result<Self, AuthError> {
        let Some(path) = token_file else {
            return Ok(Self::default());
        };
        let contents = fs::read_to_string(path).map_err(|source| AuthError::Read { path: path.to_owned(), source })?;
        Self::from_token_csv(path, &contents)
    }

    fn from_token_csv(path: &Path, contents: &str) -> Result<Self, AuthError> {
        let mut tokens: Vec<TokenEntry> = Vec::new();
        for (index, line) in contents.lines().enumerate() {
            let line_number = index + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let malformed = |reason: String| AuthError::Malformed { path: path.to_owned(), line: line_number, reason };
            let fields = parse_csv_record(line).map_err(malformed)?;
            if fields.len() < 3 {
                return Err(malformed(format!(
                    "expected at least 3 columns (token, user name, user uid), found {}",
                    fields.len()
                )));
            }
            let token = fields[0].clone();
            if token.is_empty() {
                tracing::warn!(path = %path.display(), line = line_number, "skipping token file record with an empty token");
                continue;
            }
            if fields[1].is_empty() {
                return Err(malformed("user name is empty".to_owned()));
            }
            let groups = fields
                .get(3)
                .map(|groups| groups.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default();
            let entry = TokenEntry {
                token: token.into_bytes(),
                user: UserInfo { name: fields[1].clone(), uid: fields[2].clone(), groups },
            };
            if let Some(existing) = tokens.iter_mut().find(|e| e.token == entry.token) {
                tracing::warn!(path = %path.display(), line = line_number, "duplicate token in token file; the later record wins");
                *existing = entry;
            } else {
                tokens.push(entry);
            }
        }
        Ok(Self { tokens })
    }

    /// Number of static tokens loaded.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// Authenticates a request. `client_cert_der` is the leaf certificate the TLS layer already verified
    /// against the cluster CA; `authorization` is the raw `Authorization` header. The certificate wins when
    /// both are present (upstream order). `None` means unauthenticated (401).
    pub fn authenticate(&self, client_cert_der: Option<&[u8]>, authorization: Option<&str>) -> Option<UserInfo> {
        if let Some(user) = client_cert_der.and_then(user_from_certificate) {
            return Some(user);
        }
        let token = bearer_token(authorization?)?;
        self.lookup_token(token).cloned().map(with_authenticated_group)
    }

    /// Finds the user of `token`, comparing against every entry in constant time per entry.
    fn lookup_token(&self, token: &str) -> Option<&UserInfo> {
        let mut found = None;
        for entry in &self.tokens {
            if constant_time_eq(&entry.token, token.as_bytes()) {
                found = Some(&entry.user);
            }
        }
        found
    }
}

/// The user of a client certificate: CN is the name, every O a group. `None` without a usable CN (upstream
/// then falls through to the next authenticator).
fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    // Like Go's pkix.Name, the last CN attribute is the common name.
    let name = subject.iter_common_name().filter_map(|cn| cn.as_str().ok()).last()?;
    if name.is_empty() {
        return None;
    }
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_owned).collect();
    Some(with_authenticated_group(UserInfo { name: name.to_owned(), uid: String::new(), groups }))
}

fn with_authenticated_group(mut user: UserInfo) -> UserInfo {
    if !user.groups.iter().any(|g| g == GROUP_AUTHENTICATED) {
        user.groups.push(GROUP_AUTHENTICATED.to_owned());
    }
    user
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, whitespace trimmed).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(|c: char| c.is_ascii_whitespace())?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    if token.is_empty() || token.contains(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    Some(token)
}

/// Compares two byte strings without an early exit on the first difference (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Parses one CSV record (RFC 4180 quoting, `""` escapes a quote; leading whitespace of a field is
/// ignored as with Go's `TrimLeadingSpace`, trailing whitespace of an unquoted field too).
fn parse_csv_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut field = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted field".to_owned()),
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            fields.push(field);
            match chars.next() {
                None => return Ok(fields),
                Some(',') => {}
                Some(c) => return Err(format!("unexpected {c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim_end().to_owned());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("bare \" in an unquoted field".to_owned()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim_end().to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::pki;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    fn authenticator(contents: &str) -> Authenticator {
        Authenticator::from_token_csv(Path::new("tokens.csv"), contents).expect("token file parses")
    }

    fn user(name: &str, uid: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.to_owned(),
            uid: uid.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    #[test]
    fn token_file_with_quoted_groups_and_comments() {
        let auth = authenticator(
            "# static tokens\n\
             \n\
             abc123,alice,uid-1,\"system:masters,dev\"\n\
             \x20 # indented comment\n\
             def456, bob ,uid-2\n\
             ghi789,carol,uid-3,ops\r\n\
             \"q,uoted\",dave,uid-4,\"a \"\"x\"\", b\"\n",
        );
        assert_eq!(auth.token_count(), 4);
        assert_eq!(
            auth.authenticate(None, Some("Bearer abc123")),
            Some(user("alice", "uid-1", &["system:masters", "dev", GROUP_AUTHENTICATED]))
        );
        assert_eq!(auth.authenticate(None, Some("bearer def456")), Some(user("bob", "uid-2", &[GROUP_AUTHENTICATED])));
        assert_eq!(
            auth.authenticate(None, Some("  BEARER   ghi789  ")),
            Some(user("carol", "uid-3", &["ops", GROUP_AUTHENTICATED]))
        );
        assert_eq!(
            auth.authenticate(None, Some("Bearer q,uoted")),
            Some(user("dave", "uid-4", &["a \"x\"", "b", GROUP_AUTHENTICATED]))
        );
    }

    #[test]
    fn malformed_token_file_names_the_line() {
        let err = Authenticator::from_token_csv(Path::new("/etc/tokens.csv"), "# ok\ngood,user,uid\nonly,two\n")
            .expect_err("two columns");
        assert!(matches!(err, AuthError::Malformed { line: 3, .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "token file /etc/tokens.csv line 3: expected at least 3 columns (token, user name, user uid), found 2"
        );

        let err = Authenticator::from_token_csv(Path::new("t.csv"), "t,u,i,\"unterminated\n").expect_err("quote");
        assert!(matches!(err, AuthError::Malformed { line: 1, .. }), "{err}");
        let err = Authenticator::from_token_csv(Path::new("t.csv"), "\n\nt,u,i,\"g\"x\n").expect_err("after quote");
        assert!(matches!(err, AuthError::Malformed { line: 3, .. }), "{err}");
        let err = Authenticator::from_token_csv(Path::new("t.csv"), "t,,i\n").expect_err("empty user");
        assert!(matches!(err, AuthError::Malformed { line: 1, .. }), "{err}");
    }

    #[test]
    fn token_file_is_read_from_disk() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("tokens.csv");
        fs::write(&path, "tok,admin,1,system:masters\n,skipped,2\ntok,replaced,3\n").expect("write");
        let auth = Authenticator::new(Some(&path)).expect("loads");
        assert_eq!(auth.token_count(), 1);
        assert_eq!(auth.authenticate(None, Some("Bearer tok")), Some(user("replaced", "3", &[GROUP_AUTHENTICATED])));

        let err = Authenticator::new(Some(&tmp.path().join("missing.csv"))).expect_err("missing file");
        assert!(err.to_string().starts_with("cannot read token file"), "{err}");
        assert_eq!(Authenticator::new(None).expect("no file").token_count(), 0);
    }

    #[test]
    fn wrong_or_missing_credentials_are_rejected() {
        let auth = authenticator("secret,alice,uid-1\n");
        assert_eq!(auth.authenticate(None, None), None);
        assert_eq!(auth.authenticate(None, Some("Bearer wrong")), None);
        assert_eq!(auth.authenticate(None, Some("Bearer secre")), None);
        assert_eq!(auth.authenticate(None, Some("Bearer secret2")), None);
        assert_eq!(auth.authenticate(None, Some("Basic secret")), None);
        assert_eq!(auth.authenticate(None, Some("Bearer")), None);
        assert_eq!(auth.authenticate(None, Some("Bearer ")), None);
        assert_eq!(auth.authenticate(None, Some("Bearer secret extra")), None);
        assert_eq!(auth.authenticate(None, Some("secret")), None);
        assert_eq!(auth.authenticate(Some(b"not a certificate"), None), None);
        assert!(auth.authenticate(None, Some("Bearer secret")).is_some());
    }

    #[test]
    fn client_certificate_wins_over_token() {
        let tmp = tempfile::tempdir().expect("tempdir");
        pki::ensure_pki(tmp.path(), &[], "https://127.0.0.1:6443").expect("pki");
        let groups = vec!["system:nodes".to_owned(), GROUP_AUTHENTICATED.to_owned()];
        let (cert_pem, _) = pki::issue_client_cert(tmp.path(), "system:node:n1", &groups).expect("client cert");
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("pem");

        let auth = authenticator("secret,alice,uid-1\n");
        let expected = user("system:node:n1", "", &["system:nodes", GROUP_AUTHENTICATED]);
        assert_eq!(auth.authenticate(Some(&der), Some("Bearer secret")), Some(expected.clone()));
        assert_eq!(auth.authenticate(Some(&der), None), Some(expected.clone()));
        assert_eq!(auth.authenticate(Some(&der), Some("Bearer wrong")), Some(expected));
    }

    #[test]
    fn csv_records() {
        assert_eq!(parse_csv_record("a,b,c").expect("plain"), vec!["a", "b", "c"]);
        assert_eq!(parse_csv_record("a,,\"\"").expect("empty fields"), vec!["a", "", ""]);
        assert_eq!(parse_csv_record("a,b,").expect("trailing comma"), vec!["a", "b", ""]);
        assert_eq!(parse_csv_record(" \"x,y\" , z").expect("spaces"), vec!["x,y", "z"]);
        assert!(parse_csv_record("a\"b,c").is_err());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
