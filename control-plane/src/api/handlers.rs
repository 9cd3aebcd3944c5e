//! The verbs on resources: get, list, create, update, patch, delete (watch lives in `watch`). Each
//! takes a parsed request and returns a `Reply`; HTTP framing is the server's.
//!
//! Must not depend on hyper or TLS.

use bytes::Bytes;
use serde_json::{json, Value};

use super::admission::{self, WriteVerb};
use super::apply;
use super::apply_handler::{apply_error, field_manager, is_apply_patch};
use super::deletion::replace_or_finalize;
use super::objects::{self, SystemFields};
use super::patch::{apply_patch, PatchKind};
use super::query::Query;
use super::resources::ResourceDef;
use super::router::ResourceTarget;
use super::selector::{FieldSelector, LabelSelector};
use super::status::{self, ApiError};
use super::storage::{ListRead, ObjectStore};
use super::table::{table_for, IncludeObject};

/// What a handler answers (streams are produced by `watch`).
#[derive(Debug)]
pub struct JsonReply {
    pub code: u16,
    pub body: Value,
    pub warnings: Vec<String>,
}

impl JsonReply {
    fn ok(body: Value) -> Self {
        Self { code: 200, body, warnings: Vec::new() }
    }
}

/// A parsed resource request.
pub struct ResourceRequest<'a> {
    pub target: &'a ResourceTarget,
    pub query: &'a Query,
    pub accept: &'a str,
    pub content_type: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub body: &'a Bytes,
}

impl ResourceRequest<'_> {
    fn def(&self) -> &'static ResourceDef {
        self.target.def
    }

    fn ns(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }

    fn name(&self) -> Result<&str, ApiError> {
        self.target.name.as_deref().ok_or_else(|| ApiError::method_not_allowed("this verb needs an object name"))
    }

    fn wants_table(&self) -> bool {
        wants_table(self.accept)
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.query.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => {
                Err(ApiError::bad_request(format!("unsupported dryRun value {other:?}: only All is allowed")))
            }
        }
    }
}

/// Whether the client asked for `meta.k8s.io/v1` Table output.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| first.replace(' ', "").contains("as=Table"))
}

/// `includeObject` for Table rows; an unknown value is a 400, as upstream.
pub fn include_object(q: &Query) -> Result<IncludeObject, ApiError> {
    q.get("includeObject")
        .unwrap_or("")
        .parse()
        .map_err(|e: super::table::TableError| ApiError::bad_request(e.to_string()))
}

/// Decodes a request body by content type (a missing content type is JSON, as clients rely on).
pub fn decode_body(content_type: Option<&str>, body: &[u8], limit: usize) -> Result<Value, ApiError> {
    if body.len() > limit {
        return Err(ApiError::too_large(format!("request body is {} bytes, limit {limit}", body.len())));
    }
    let ct = content_type.unwrap_or("application/json").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match ct.as_str() {
        "" | "application/json" | "*/*" => {
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" | "application/apply-patch+yaml" => {
            serde_yaml_ng::from_slice::<Value>(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))
        }
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode_object(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding protobuf body: {e}"))),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Wraps `items` as a list, or a Table, as the client asked.
fn render_list(req: &ResourceRequest<'_>, items: Vec<Value>, revision: i64, cont: Option<String>) -> Value {
    let def = req.def();
    if req.wants_table() {
        return table_for(
            def.group,
            def.resource,
            &items,
            include_object(req.query).unwrap_or_default(),
            &revision.to_string(),
            cont.as_deref(),
            chrono::Utc::now(),
        );
    }
    let mut metadata = json!({ "resourceVersion": revision.to_string() });
    if let Some(c) = cont {
        metadata["continue"] = json!(c);
    }
    json!({ "kind": def.list_kind(), "apiVersion": def.api_version(), "metadata": metadata, "items": items })
}

fn render_one(req: &ResourceRequest<'_>, obj: Value) -> Value {
    if req.wants_table() {
        let rv = objects::meta_str(&obj, "resourceVersion").to_string();
        return table_for(
            req.def().group,
            req.def().resource,
            &[obj],
            include_object(req.query).unwrap_or_default(),
            &rv,
            None,
            chrono::Utc::now(),
        );
    }
    obj
}

/// `continue` tokens: the revision the first page was read at and the key to resume from.
fn encode_continue(revision: i64, key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({ "v": 1, "rv": revision, "start": key }).to_string())
}

fn decode_continue(token: &str, def: &ResourceDef) -> Result<(i64, String), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_i64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_string();
    if !start.starts_with(&def.key_prefix()) {
        return Err(bad());
    }
    Ok((rv, start))
}

/// Label and field selectors of a list or watch.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub fn from_query(def: &ResourceDef, q: &Query) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
        fields
            .validate_for(def.group, def.resource)
            .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
        Ok(Self { labels, fields })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        (self.labels.is_empty() || self.labels.matches(&objects::labels(obj)))
            && (self.fields.is_empty() || self.fields.matches(obj))
    }
}

/// The API verbs over one store.
#[derive(Clone)]
pub struct Handlers {
    pub objects: ObjectStore,
    pub max_body_bytes: usize,
}

impl Handlers {
    pub async fn get(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let def = req.def();
        let name = req.name()?;
        include_object(req.query)?;
        let cached = if req.query.get("resourceVersion") == Some("0") { self.get_from_cache(req).await? } else { None };
        let obj = match cached {
            Some(obj) => obj,
            None => self.objects.get_existing(def, req.ns(), name).await?.0,
        };
        Ok(JsonReply::ok(render_one(req, obj)))
    }

    pub async fn list(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let def = req.def();
        let filter = Filter::from_query(def, req.query)?;
        include_object(req.query)?;
        let limit = req.query.int("limit")?.unwrap_or(0) as usize;
        let rv = req.query.get("resourceVersion").unwrap_or("");
        let matching = req.query.get("resourceVersionMatch").unwrap_or("");
        let mut read = ListRead { limit, ..Default::default() };
        if let Some(token) = req.query.get("continue").filter(|t| !t.is_empty()) {
            let (rev, start) = decode_continue(token, def)?;
            read.revision = rev;
            read.start_key = Some(start);
            read.serializable = true;
        } else if rv == "0" {
            read.serializable = true;
        } else if !rv.is_empty() {
            let n: i64 = rv.parse().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
            if matching == "Exact" {
                read.revision = n;
            } else if n > self.objects.revision() {
                // NotOlderThan a revision this replica has not applied yet: read linearizably.
                read.serializable = false;
            }
        }
        let page = self.objects.list(def, req.ns(), &read, |o| filter.matches(o)).await.map_err(|e| {
            if e.code == 410 && read.start_key.is_some() {
                ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
            } else {
                e
            }
        })?;
        let cont = page.next_key.as_deref().map(|k| encode_continue(page.revision, k));
        let items = page
            .items
            .into_iter()
            .map(|mut o| {
                // Lists carry items without kind/apiVersion upstream; keeping them is harmless and helps clients.
                if o.get("kind").is_none() {
                    o["kind"] = json!(def.kind);
                }
                o
            })
            .collect();
        Ok(JsonReply::ok(render_list(req, items, page.revision, cont)))
    }

    pub async fn create(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let def = req.def();
        if req.target.name.is_some() && req.target.subresource.is_none() {
            return Err(ApiError::method_not_allowed("POST is not allowed on a named object"));
        }
        let mut obj = decode_body(req.content_type, req.body, self.max_body_bytes)?;
        let warnings = admission::check_fields(def, WriteVerb::Create, req.query.get("fieldValidation"), &mut obj)?;
        objects::check_type(def, def.group, def.version, def.kind, &mut obj)?;
        objects::check_namespace(def, req.ns(), &mut obj)?;
        let mut reply = self.create_object(req, obj, req.dry_run()?, true).await?;
        reply.warnings = warnings;
        Ok(reply)
    }

    /// Stores a new object: defaults, system fields, validation and (unless the caller already
    /// settled them, as apply does) field ownership.
    pub(super) async fn create_object(
        &self,
        req: &ResourceRequest<'_>,
        mut obj: Value,
        dry_run: bool,
        track_ownership: bool,
    ) -> Result<JsonReply, ApiError> {
        let def = req.def();
        if def.namespaced {
            self.check_namespace_open(req.ns().unwrap_or_default()).await?;
        }
        let sys = SystemFields::generate();
        let name = admission::admit_new(def, &mut obj, &sys)?;
        if track_ownership {
            let manager = field_manager(req)?;
            apply::track_update(None, &mut obj, &manager, "Update", &def.api_version(), &sys.now);
        }
        if dry_run {
            let previewed = self.objects.preview_write(def, None, obj).await?;
            return Ok(JsonReply { code: 201, body: previewed, warnings: Vec::new() });
        }
        let created = self.objects.create(def, req.ns(), &name, obj).await?;
        Ok(JsonReply { code: 201, body: created, warnings: Vec::new() })
    }

    async fn check_namespace_open(&self, ns: &str) -> Result<(), ApiError> {
        let namespaces =
            super::resources::find("", "v1", "namespaces").ok_or_else(|| ApiError::internal("no namespaces"))?;
        // Every namespaced create asks this: answer from the watch cache (its projection keeps
        // `status.phase`), and read the store only for a namespace the cache has not seen yet.
        let cached = match self.objects.cache(namespaces).await {
            Ok(cache) => cache.get(&namespaces.key(None, ns)).map(|n| n.selectable.clone()),
            Err(_) => None,
        };
        let namespace = match cached {
            Some(n) => Some(n),
            None => self.objects.get(namespaces, None, ns, true).await?,
        };
        match namespace {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if n["status"]["phase"] == "Terminating" => Err(ApiError::forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// PUT: replace the object (or its status); `resourceVersion` in the body must match if given.
    pub async fn update(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let def = req.def();
        let name = req.name()?.to_string();
        let mut new = decode_body(req.content_type, req.body, self.max_body_bytes)?;
        let warnings = admission::check_fields(def, WriteVerb::Update, req.query.get("fieldValidation"), &mut new)?;
        objects::check_type(def, def.group, def.version, def.kind, &mut new)?;
        objects::check_namespace(def, req.ns(), &mut new)?;
        let body_name = objects::meta_str(&new, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let expected = objects::resource_version(&new)?;
        let dry = req.dry_run()?;
        let stored = self
            .guaranteed_update(def, req.ns(), &name, expected, dry, |current| {
                self.admit_update(req, current, new.clone())
            })
            .await?;
        Ok(JsonReply { code: 200, body: stored, warnings })
    }

    /// PATCH with JSON, merge or strategic-merge patches, or server-side apply.
    pub async fn patch(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let def = req.def();
        let name = req.name()?.to_string();
        if req.body.len() > self.max_body_bytes {
            return Err(ApiError::too_large(format!(
                "patch is {} bytes, limit {}",
                req.body.len(),
                self.max_body_bytes
            )));
        }
        if is_apply_patch(req.content_type) {
            return self.server_side_apply(req).await;
        }
        let force = req.query.get("force").map(|_| req.query.bool("force")).transpose()?;
        apply::check_patch_options(false, req.query.get("fieldManager"), force)
            .map_err(|e| apply_error(def, &name, e))?;
        let ct = req.content_type.unwrap_or("");
        let kind = PatchKind::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
        let dry = req.dry_run()?;
        let body = req.body.clone();
        let mode = req.query.get("fieldValidation");
        // The transform may run more than once (compare-and-swap retries): keep the last warnings.
        let warnings = std::sync::Mutex::new(Vec::new());
        let stored = self
            .guaranteed_update(def, req.ns(), &name, None, dry, |current| {
                let mut patched = apply_patch(kind, current, &body, def.group, def.kind).map_err(patch_error)?;
                let found = admission::check_fields(def, WriteVerb::Patch, mode, &mut patched)?;
                *warnings.lock().unwrap_or_else(|p| p.into_inner()) = found;
                let expected = objects::resource_version(&patched)?;
                let current_rv = objects::resource_version(current)?;
                if expected.is_some() && expected != current_rv {
                    return Err(modified(def, &name));
                }
                self.admit_update(req, current, patched)
            })
            .await?;
        let warnings = warnings.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(JsonReply { code: 200, body: stored, warnings })
    }

    /// The object an update or patch stores: the new content with what it may not change taken
    /// from `current`, validated, with the writer recorded as owner of what it changed.
    pub(super) fn admit_update(
        &self,
        req: &ResourceRequest<'_>,
        current: &Value,
        next: Value,
    ) -> Result<Value, ApiError> {
        self.admit(req, current, next, true)
    }

    /// As [`Self::admit_update`], for content whose ownership the caller already settled (apply).
    pub(super) fn admit_applied(
        &self,
        req: &ResourceRequest<'_>,
        current: &Value,
        next: Value,
    ) -> Result<Value, ApiError> {
        self.admit(req, current, next, false)
    }

    fn admit(
        &self,
        req: &ResourceRequest<'_>,
        current: &Value,
        mut next: Value,
        track_ownership: bool,
    ) -> Result<Value, ApiError> {
        let def = req.def();
        let name = req.name()?;
        let status_scope = req.target.subresource.as_deref() == Some("status");
        let settled = next.pointer("/metadata/managedFields").cloned();
        admission::admit_changed(def, name, current, &mut next, req.target.subresource.as_deref())?;
        let scope = if status_scope { apply::Scope::Status } else { apply::Scope::Main };
        if track_ownership {
            let manager = field_manager(req)?;
            let now = objects::now_rfc3339();
            apply::track_update_in_scope(scope, Some(current), &mut next, &manager, "Update", &def.api_version(), &now);
        } else if let Some(managed) = settled {
            next["metadata"]["managedFields"] = managed;
        }
        Ok(next)
    }

    /// Reads, transforms and compare-and-swaps until the write lands. With `expected` set, a
    /// concurrent change is a 409 instead of a retry.
    async fn guaranteed_update(
        &self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        expected: Option<i64>,
        dry_run: bool,
        transform: impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        for _ in 0..16 {
            let (current, current_rv) = self.objects.get_existing(def, ns, name).await?;
            if let Some(e) = expected {
                if e != current_rv {
                    return Err(modified(def, name));
                }
            }
            let next = transform(&current)?;
            if dry_run {
                return self.objects.preview_write(def, Some(&current), next).await;
            }
            if same_content(&current, &next) {
                // A no-op write keeps the resourceVersion, like upstream.
                return Ok(current);
            }
            match replace_or_finalize(&self.objects, def, ns, name, &current, current_rv, next).await? {
                Some(stored) => return Ok(stored),
                None if expected.is_some() => return Err(modified(def, name)),
                None => continue,
            }
        }
        Err(ApiError::conflict(def.group, def.resource, name, "too many concurrent updates, try again"))
    }

    /// DELETE of one object (see `deletion`).
    pub async fn delete(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        self.delete_resource(req).await
    }

    /// DELETE on a collection: deletes every matching object.
    pub async fn delete_collection(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let def = req.def();
        let filter = Filter::from_query(def, req.query)?;
        let page = self.objects.list(def, req.ns(), &ListRead::default(), |o| filter.matches(o)).await?;
        for obj in page.items {
            let name = objects::meta_str(&obj, "name").to_string();
            let ns = objects::meta_str(&obj, "namespace").to_string();
            let target = ResourceTarget {
                def,
                namespace: if def.namespaced { Some(ns) } else { None },
                name: Some(name),
                subresource: None,
            };
            let one = ResourceRequest {
                target: &target,
                query: req.query,
                accept: "application/json",
                content_type: req.content_type,
                user_agent: req.user_agent,
                body: req.body,
            };
            match self.delete(&one).await {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(JsonReply::ok(status::success(200)))
    }
}

/// The optimistic-concurrency 409, worded as upstream.
pub(super) fn modified(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::conflict(
        def.group,
        def.resource,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// Whether a write would change nothing but the resourceVersion (and the time stamps of field
/// ownership, which a no-op must not bump either).
pub(super) fn same_content(current: &Value, next: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(entries) = m.get_mut("managedFields").and_then(Value::as_array_mut) {
                for e in entries.iter_mut().filter_map(Value::as_object_mut) {
                    e.remove("time");
                }
            }
        }
        v
    };
    strip(current) == strip(next)
}

fn patch_error(e: super::patch::PatchError) -> ApiError {
    let msg = e.to_string();
    match e.http_status() {
        415 => ApiError::unsupported_media_type(&msg),
        422 => ApiError::invalid(
            "",
            "",
            "",
            vec![status::Cause { reason: "FieldValueInvalid", field: "patch".into(), message: msg }],
        ),
        _ => ApiError::bad_request(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_accept_and_continue_tokens() {
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
        let pods = super::super::resources::find("", "v1", "pods").expect("pods");
        let t = encode_continue(42, "/registry/core/pods/default/b");
        assert_eq!(decode_continue(&t, pods).expect("decode"), (42, "/registry/core/pods/default/b".to_string()));
        assert!(decode_continue("garbage!", pods).is_err());
        let other = encode_continue(1, "/registry/core/secrets/default/x");
        assert!(decode_continue(&other, pods).is_err(), "a token for another resource is refused");
    }

    #[test]
    fn bodies_decode_by_content_type() {
        assert_eq!(decode_body(None, br#"{"a":1}"#, 100).expect("json")["a"], 1);
        assert_eq!(decode_body(Some("application/yaml"), b"a: 1\n", 100).expect("yaml")["a"], 1);
        assert_eq!(decode_body(Some("application/json"), b"{", 100).expect_err("bad json").code, 400);
        assert_eq!(decode_body(Some("application/yaml"), b"a: [", 100).expect_err("bad yaml").code, 400);
        assert_eq!(decode_body(Some("text/plain"), b"x", 100).expect_err("media").code, 415);
        assert_eq!(decode_body(None, &[b' '; 101], 100).expect_err("large").code, 413);
    }
}
