//! Why a selector was rejected.

/// Why a selector was rejected. Every message reads like the upstream API server's; the server turns
/// any of them into a 400 `BadRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// One requirement of a label selector does not parse or validate.
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// A label selector is malformed outside a requirement (separators, a bad `metav1.LabelSelector`).
    #[error("{0}")]
    Invalid(String),
    /// A field selector term without `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm { selector: String, term: String },
    /// A backslash in a field selector value that escapes something other than `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    Escape(String),
    /// A `,` or `=` in a field selector value that is not escaped.
    #[error("invalid field selector: unescaped character in value: {0}")]
    Unescaped(char),
    /// A field that the resource does not allow selecting on.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}
