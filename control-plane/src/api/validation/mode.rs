//! The `fieldValidation` query parameter and the errors of this module.
//!
//! Must not depend on the HTTP layer: callers turn [`ValidationError`] into their own responses.

use super::super::status::Cause;

/// How unknown fields in a request body are treated (`?fieldValidation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown fields are dropped silently.
    Ignore,
    /// Unknown fields are dropped and reported in `Warning` headers (upstream default).
    Warn,
    /// Unknown fields reject the request with 400 BadRequest.
    Strict,
}

/// Everything this module refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// `?fieldValidation=` has a value other than `Ignore`, `Warn` or `Strict`. Upstream answers 422
    /// with kind `CreateOptions`/`UpdateOptions`/`PatchOptions` of group `meta.k8s.io`; see
    /// [`ValidationError::cause`].
    #[error("fieldValidation: Unsupported value: {0:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"")]
    UnsupportedMode(String),
    /// The body does not decode into the kind's schema (a string where a number belongs, ...).
    /// Upstream answers 400 BadRequest with this message.
    #[error("{kind} in version {version:?} cannot be handled as a {kind}: {detail}")]
    Decode { kind: String, version: String, detail: String },
    /// Unknown fields under `fieldValidation=Strict`; 400 BadRequest with this message.
    #[error("{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}", unknown_list(.fields))]
    Strict { kind: String, version: String, fields: Vec<String> },
}

impl ValidationError {
    /// The field cause of an [`ValidationError::UnsupportedMode`] (for a 422 `details.causes`).
    pub fn cause(&self) -> Option<Cause> {
        match self {
            Self::UnsupportedMode(v) => Some(Cause {
                reason: "FieldValueNotSupported",
                field: "fieldValidation".into(),
                message: format!("Unsupported value: {v:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""),
            }),
            _ => None,
        }
    }
}

fn unknown_list(fields: &[String]) -> String {
    fields.iter().map(|f| format!("unknown field {f:?}")).collect::<Vec<_>>().join(", ")
}

/// Parses `?fieldValidation=`; absent or empty means `Warn`, as upstream.
pub fn field_validation_mode(query_value: Option<&str>) -> Result<FieldValidation, ValidationError> {
    match query_value.unwrap_or("") {
        "" | "Warn" => Ok(FieldValidation::Warn),
        "Ignore" => Ok(FieldValidation::Ignore),
        "Strict" => Ok(FieldValidation::Strict),
        other => Err(ValidationError::UnsupportedMode(other.to_string())),
    }
}

/// The `Warning` header texts (`unknown field "spec.foo"`) for unknown fields under `Warn`.
pub(super) fn warnings(fields: &[String]) -> Vec<String> {
    fields.iter().map(|f| format!("unknown field {f:?}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_like_upstream() {
        let cases: &[(Option<&str>, Option<FieldValidation>)] = &[
            (None, Some(FieldValidation::Warn)),
            (Some(""), Some(FieldValidation::Warn)),
            (Some("Warn"), Some(FieldValidation::Warn)),
            (Some("Ignore"), Some(FieldValidation::Ignore)),
            (Some("Strict"), Some(FieldValidation::Strict)),
            (Some("strict"), None),
            (Some("bogus"), None),
        ];
        for (input, want) in cases {
            assert_eq!(field_validation_mode(*input).ok(), *want, "{input:?}");
        }
        let err = field_validation_mode(Some("bogus")).expect_err("bogus");
        assert_eq!(err.cause().map(|c| c.reason), Some("FieldValueNotSupported"));
        assert!(err.to_string().contains("Unsupported value: \"bogus\""));
    }

    #[test]
    fn strict_message_joins_fields() {
        let e = ValidationError::Strict {
            kind: "Deployment".into(),
            version: "v1".into(),
            fields: vec!["spec.foo".into(), "spec.bar".into()],
        };
        assert_eq!(
            e.to_string(),
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.foo\", unknown field \"spec.bar\""
        );
        assert_eq!(warnings(&["spec.foo".into()]), vec!["unknown field \"spec.foo\"".to_string()]);
    }
}
