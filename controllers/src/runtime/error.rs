//! Errors of reconcile passes and of the runtime around them.

use super::object_key::ObjectKey;

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// An API call failed; `action` says what was attempted on which object.
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// The object is not what the controller can act on (kept in the queue with back-off).
    #[error("{key}: {message}")]
    Invalid { key: ObjectKey, message: String },
}

impl ControllerError {
    /// Wraps an API error with what was being done.
    pub fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Api { action, source }
    }

    /// Whether the API answered with `code` (404 on a vanished object, 409 on a conflict, ...).
    pub fn is_status(&self, code: u16) -> bool {
        matches!(self, Self::Api { source: kube::Error::Api(s), .. } if s.code == code)
    }
}

/// Whether a kube error is the API's answer with `code`.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}
