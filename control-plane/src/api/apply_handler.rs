//! `PATCH` with `application/apply-patch+yaml`: server-side apply. Reads the live object (or none),
//! lets `apply` merge the configuration and settle field ownership, and stores the result with the
//! same compare-and-swap loop as every other write; a missing object is created.
//!
//! Must not depend on hyper or TLS.

use super::admission::{check_fields, WriteVerb};
use super::apply::{self, ApplyError, Scope};
use super::deletion::replace_or_finalize;
use super::handlers::{decode_body, Handlers, JsonReply, ResourceRequest};
use super::objects;
use super::resources::ResourceDef;
use super::status::{ApiError, Cause};

/// Whether a PATCH content type asks for server-side apply.
pub fn is_apply_patch(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mt| mt.trim().eq_ignore_ascii_case("application/apply-patch+yaml"))
}

/// The manager a write is recorded under: `fieldManager`, else the client's User-Agent name.
pub fn field_manager(req: &ResourceRequest<'_>) -> Result<String, ApiError> {
    match req.query.get("fieldManager") {
        Some(m) => {
            apply::check_field_manager(Some(m)).map_err(|e| apply_error(req.target.def, "", e))?;
            Ok(m.to_string())
        }
        None => Ok(apply::default_manager(req.user_agent)),
    }
}

/// Maps an apply failure to the Status upstream answers with.
pub fn apply_error(def: &ResourceDef, name: &str, e: ApplyError) -> ApiError {
    match &e {
        ApplyError::Conflict(conflicts) => {
            let causes = conflicts
                .iter()
                .map(|c| Cause { reason: "FieldManagerConflict", field: c.path.clone(), message: c.cause_message() })
                .collect();
            ApiError::apply_conflict(def.group, def.resource, name, e.to_string(), causes)
        }
        _ => ApiError::with_code(e.http_status(), e.reason(), e.to_string()),
    }
}

impl Handlers {
    /// Server-side apply of the request body to the named object.
    pub async fn server_side_apply(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let def = req.target.def;
        let name = req.target.name.clone().ok_or_else(|| ApiError::method_not_allowed("apply needs an object name"))?;
        let force = req.query.bool("force")?;
        apply::check_patch_options(true, req.query.get("fieldManager"), Some(force))
            .map_err(|e| apply_error(def, &name, e))?;
        let manager = req.query.get("fieldManager").unwrap_or_default().to_string();
        let mut config = decode_body(Some("application/yaml"), req.body, self.max_body_bytes)?;
        if !config.is_object() {
            return Err(ApiError::bad_request("the apply configuration must be an object"));
        }
        let warnings = check_fields(def, WriteVerb::Patch, req.query.get("fieldValidation"), &mut config)?;
        objects::check_type(def, def.group, def.version, def.kind, &mut config)?;
        objects::check_namespace(def, req.target.namespace.as_deref(), &mut config)?;
        let config_name = objects::meta_str(&config, "name");
        if config_name.is_empty() {
            return Err(ApiError::bad_request("metadata.name is required in an apply configuration"));
        }
        if config_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({config_name}) does not match the name on the URL ({name})"
            )));
        }
        let scope = if req.target.subresource.as_deref() == Some("status") { Scope::Status } else { Scope::Main };
        let ns = req.target.namespace.as_deref();
        let dry = matches!(req.query.get("dryRun"), Some("All"));
        for _ in 0..16 {
            let now = objects::now_rfc3339();
            let live = self.objects.get(def, ns, &name, false).await?;
            let merged =
                apply::apply_in_scope(scope, live.as_ref(), &config, &manager, force, &now, (def.group, def.kind))
                    .map_err(|e| apply_error(def, &name, e))?;
            let Some(current) = live else {
                if scope == Scope::Status {
                    return Err(ApiError::not_found(def.group, def.resource, &name));
                }
                let created = self.create_object(req, merged, dry, false).await;
                match created {
                    Err(e) if e.code == 409 && e.reason == "AlreadyExists" => continue,
                    other => return other.map(|r| JsonReply { warnings: warnings.clone(), ..r }),
                }
            };
            let current_rv = objects::resource_version(&current)?.unwrap_or(0);
            if let Some(expected) = objects::resource_version(&config)? {
                if expected != current_rv {
                    return Err(super::handlers::modified(def, &name));
                }
            }
            let next = self.admit_applied(req, &current, merged)?;
            if dry {
                let previewed = self.objects.preview_write(def, Some(&current), next).await?;
                return Ok(JsonReply { code: 200, body: previewed, warnings });
            }
            if super::handlers::same_content(&current, &next) {
                return Ok(JsonReply { code: 200, body: current, warnings });
            }
            if let Some(stored) = replace_or_finalize(&self.objects, def, ns, &name, &current, current_rv, next).await?
            {
                return Ok(JsonReply { code: 200, body: stored, warnings });
            }
        }
        Err(ApiError::conflict(def.group, def.resource, &name, "too many concurrent updates, try again"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_content_types_and_errors() {
        assert!(is_apply_patch(Some("application/apply-patch+yaml")));
        assert!(is_apply_patch(Some("application/apply-patch+yaml; charset=utf-8")));
        assert!(!is_apply_patch(Some("application/merge-patch+json")));
        assert!(!is_apply_patch(None));
        let deployments = super::super::resources::find("apps", "v1", "deployments").expect("deployments");
        let e = apply_error(deployments, "web", ApplyError::FieldManagerRequired);
        assert_eq!(e.code, 422);
        let conflict = ApplyError::Conflict(vec![apply::FieldConflict {
            manager: "kubectl".into(),
            operation: "Update".into(),
            api_version: "apps/v1".into(),
            subresource: None,
            path: ".spec.replicas".into(),
        }]);
        let status = apply_error(deployments, "web", conflict).to_status();
        assert_eq!(status["code"], 409);
        assert_eq!(status["reason"], "Conflict");
        assert_eq!(status["details"]["causes"][0]["reason"], "FieldManagerConflict");
        assert_eq!(status["details"]["causes"][0]["field"], ".spec.replicas");
        assert_eq!(
            status["message"],
            "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas"
        );
    }
}
