//! Image reference syntax (`[domain[:port]/]path[:tag][@digest]`, the grammar of the
//! distribution/reference library the kubelet uses), so a malformed image is reported as
//! `InvalidImageName` before the runtime is asked to pull it. Pure.

/// Checks `image`; the error is the kubelet's message for an `InvalidImageName` container.
pub fn check_image_ref(image: &str) -> Result<(), String> {
    parse(image).map_err(|why| {
        format!("Failed to apply default image tag {image:?}: couldn't parse image reference {image:?}: {why}")
    })
}

fn parse(image: &str) -> Result<(), &'static str> {
    const INVALID: &str = "invalid reference format";
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let (algo, hex) = d.split_once(':').ok_or(INVALID)?;
        let algo_ok = !algo.is_empty()
            && algo.split(['+', '.', '-', '_']).all(|c| {
                c.starts_with(|ch: char| ch.is_ascii_alphabetic()) && c.chars().all(|ch| ch.is_ascii_alphanumeric())
            });
        if !algo_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(INVALID);
        }
    }
    // A tag is after the last ':' that follows the last '/' (a ':' before it is a registry port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(INVALID);
        }
    }
    if name.is_empty() || name.len() > 255 {
        return Err(INVALID);
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    let has_domain = components.len() > 1
        && (first.contains(['.', ':']) || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase()));
    if has_domain {
        let domain = components.remove(0);
        if !valid_domain(domain) {
            return Err(INVALID);
        }
    }
    for c in &components {
        if c.chars().any(|ch| ch.is_ascii_uppercase()) {
            return Err("repository name must be lowercase");
        }
        if !valid_path_component(c) {
            return Err(INVALID);
        }
    }
    Ok(())
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if domain.starts_with('[') {
        let Some(end) = domain.find(']') else { return false };
        let after = &domain[end + 1..];
        if !after.is_empty() && !after.starts_with(':') {
            return false;
        }
        (&domain[..=end], after.strip_prefix(':'))
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if port.is_some_and(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit())) {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_path_component(c: &str) -> bool {
    if c.is_empty() {
        return false;
    }
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_references_pass() {
        for image in [
            "busybox",
            "localhost/busybox:1",
            "localhost:5000/team/app:v1.2-rc_3",
            "registry.example.com/a/b/c",
            "docker.io/library/nginx:1.27",
            "my-app__x/z.y-w",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "[::1]:5000/app:latest",
            "[::1]/app",
        ] {
            assert_eq!(check_image_ref(image), Ok(()), "{image}");
        }
    }

    #[test]
    fn invalid_references_fail_with_the_kubelet_message() {
        for image in [
            "",
            "Busybox",
            "busy box",
            "app:",
            "app:-bad",
            "-app",
            "app/",
            "a//b",
            "app@sha256:xyz",
            "localhost:port/app",
            "a/b/",
            "app:tag:again",
        ] {
            let err = check_image_ref(image).expect_err(image);
            assert!(
                err.starts_with(&format!(
                    "Failed to apply default image tag {image:?}: couldn't parse image reference"
                )),
                "{err}"
            );
        }
        assert!(check_image_ref("Busybox").expect_err("uppercase").ends_with("repository name must be lowercase"));
        assert!(check_image_ref("not a valid image!").expect_err("spaces").ends_with("invalid reference format"));
    }
}
