//! Errors of the agent's server and their answer: a Kubernetes `Status` with the right code, which
//! the API server passes on to the client unchanged.

use serde_json::{json, Value};

use crate::runtime::RuntimeError;

/// Why a request to the agent's server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("Unauthorized")]
    Unauthorized,
    #[error("forbidden: user {user:?} may not access {what}")]
    Forbidden { user: String, what: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{0}")]
    Internal(String),
}

impl ServerError {
    pub fn code(&self) -> u16 {
        match self {
            ServerError::Unauthorized => 401,
            ServerError::Forbidden { .. } => 403,
            ServerError::BadRequest(_) => 400,
            ServerError::NotFound(_) => 404,
            ServerError::MethodNotAllowed(_) => 405,
            ServerError::Runtime(_) | ServerError::Internal(_) => 500,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ServerError::Unauthorized => "Unauthorized",
            ServerError::Forbidden { .. } => "Forbidden",
            ServerError::BadRequest(_) => "BadRequest",
            ServerError::NotFound(_) => "NotFound",
            ServerError::MethodNotAllowed(_) => "MethodNotAllowed",
            ServerError::Runtime(_) | ServerError::Internal(_) => "InternalError",
        }
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_become_statuses_with_their_code() {
        let s = ServerError::NotFound("pod \"web\" not found".into()).to_status();
        assert_eq!((s["code"].as_u64(), s["reason"].as_str()), (Some(404), Some("NotFound")));
        assert_eq!(s["message"], "pod \"web\" not found");
        assert_eq!(ServerError::Unauthorized.to_status()["code"], 401);
        let s = ServerError::Forbidden { user: "bob".into(), what: "exec".into() }.to_status();
        assert_eq!(s["code"], 403);
        assert_eq!(s["kind"], "Status");
    }
}
