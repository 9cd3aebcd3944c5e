//! Field manager names: the default name of a write that gives none, and the checks upstream runs on
//! the `fieldManager` and `force` query parameters.
//!
//! Owns only these string rules. Must not depend on the HTTP layer: the caller passes the header and
//! query values it read.

use super::error::ApplyError;

/// Upstream's limit on a field manager name, in bytes.
const MAX_FIELD_MANAGER_LEN: usize = 128;

/// The manager of a write without `?fieldManager=`: the product token of the User-Agent (`kubectl`
/// for `kubectl/v1.31.0 (linux/amd64) kubernetes/abc`, `Go-http-client` for `Go-http-client/2.0`),
/// without non-printable characters and cut to 128 characters, as upstream derives it. Empty when the
/// request has no User-Agent.
pub fn default_manager(user_agent: Option<&str>) -> String {
    let product = user_agent.unwrap_or_default().split('/').next().unwrap_or_default();
    product.chars().filter(|c| !c.is_control()).take(MAX_FIELD_MANAGER_LEN).collect()
}

/// Checks a `fieldManager` query parameter given on any write: at most 128 bytes, printable only.
pub fn check_field_manager(field_manager: Option<&str>) -> Result<(), ApplyError> {
    let Some(name) = field_manager.filter(|name| !name.is_empty()) else {
        return Ok(());
    };
    if name.len() > MAX_FIELD_MANAGER_LEN {
        return Err(ApplyError::FieldManagerInvalid(format!(
            "Too long: may not be more than {MAX_FIELD_MANAGER_LEN} bytes"
        )));
    }
    if let Some((position, c)) = name.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(ApplyError::FieldManagerInvalid(format!(
            "Invalid value: {name:?}: invalid character U+{:04X} (at position {position})",
            u32::from(c)
        )));
    }
    Ok(())
}

/// Checks the options of a PATCH: an apply needs a `fieldManager`, `force` is only for applies, and
/// any given manager name must be valid.
pub fn check_patch_options(is_apply: bool, field_manager: Option<&str>, force: Option<bool>) -> Result<(), ApplyError> {
    if !is_apply && force.is_some() {
        return Err(ApplyError::ForceWithoutApply);
    }
    if is_apply && field_manager.is_none_or(str::is_empty) {
        return Err(ApplyError::FieldManagerRequired);
    }
    check_field_manager(field_manager)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_managers_from_user_agents() {
        let cases = [
            (Some("kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef"), "kubectl"),
            (Some("kubectl-edit/v1.31.0"), "kubectl-edit"),
            (Some("Go-http-client/2.0"), "Go-http-client"),
            (Some("Helm/4.0.0"), "Helm"),
            (Some("curl"), "curl"),
            (Some("bad\u{7}agent/1"), "badagent"),
            (Some(""), ""),
            (None, ""),
        ];
        for (user_agent, expected) in cases {
            assert_eq!(default_manager(user_agent), expected, "{user_agent:?}");
        }
        assert_eq!(default_manager(Some(&"x".repeat(300))).len(), 128);
    }

    #[test]
    fn patch_option_checks() {
        assert_eq!(check_patch_options(true, None, None), Err(ApplyError::FieldManagerRequired));
        assert_eq!(check_patch_options(true, Some(""), Some(true)), Err(ApplyError::FieldManagerRequired));
        assert_eq!(check_patch_options(false, Some("m"), Some(false)), Err(ApplyError::ForceWithoutApply));
        assert_eq!(check_patch_options(true, Some("helm"), Some(true)), Ok(()));
        assert_eq!(check_patch_options(false, None, None), Ok(()));
        assert_eq!(
            ApplyError::FieldManagerRequired.to_string(),
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
    }

    #[test]
    fn field_manager_names_are_checked() {
        assert!(check_field_manager(Some(&"m".repeat(128))).is_ok());
        let too_long = check_field_manager(Some(&"m".repeat(129))).expect_err("too long");
        assert!(too_long.to_string().contains("Too long"), "{too_long}");
        let control = check_field_manager(Some("a\tb")).expect_err("control character");
        assert!(control.to_string().contains("invalid character U+0009 (at position 1)"), "{control}");
        assert_eq!(control.http_status(), 422);
    }
}
