//! Lists and `resourceVersion=0` gets served from the watch cache. A list with no resourceVersion is
//! still linearizable: it waits until the cache has applied everything committed before the request
//! (a read-index round), as upstream's consistent reads from cache do. Items are the cache's JSON
//! bytes, spliced into the list without parsing or re-serializing them.
//!
//! Must not depend on hyper or TLS.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::handlers::{include_object, Filter, Handlers, JsonReply, ResourceRequest};
use super::status::ApiError;

/// How long a list waits for the cache to reach the revision it must show.
const CACHE_WAIT: Duration = Duration::from_secs(3);

/// A list answer: pre-serialized JSON, or a reply to render (Table output).
pub enum ListOutput {
    Raw(Bytes),
    Reply(JsonReply),
}

impl Handlers {
    /// Serves the list from the cache when its parameters allow (no paging except with
    /// `resourceVersion=0`, which ignores `limit` as upstream's cache does; no exact revision).
    pub async fn list_from_cache(&self, req: &ResourceRequest<'_>) -> Result<Option<ListOutput>, ApiError> {
        let def = req.target.def;
        let q = req.query;
        let rv = q.get("resourceVersion").unwrap_or("");
        let limit = q.int("limit")?.unwrap_or(0);
        let paging = q.get("continue").is_some_and(|c| !c.is_empty()) || (limit > 0 && rv != "0");
        if paging || q.get("resourceVersionMatch").is_some_and(|m| !m.is_empty()) {
            return Ok(None);
        }
        let wait_for = match rv {
            "0" => None,
            "" => None,
            n => Some(n.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {n:?}")))?),
        };
        let filter = Filter::from_query(def, q)?;
        let include = include_object(q)?;
        let Ok(cache) = self.objects.cache(def).await else { return Ok(None) };
        if rv.is_empty() {
            let target = self.objects.consistent_revision().await?;
            cache.wait_for(target, CACHE_WAIT).await?;
        } else if let Some(n) = wait_for {
            cache.wait_for(n, CACHE_WAIT).await?;
        }
        let (objects, revision) = cache.list(req.target.namespace.as_deref());
        let matching = objects.into_iter().filter(|o| filter.matches(&o.selectable));
        if super::handlers::wants_table(req.accept) {
            let items = matching.map(|o| o.value()).collect::<Result<Vec<Value>, ApiError>>()?;
            let table = super::table::table_for(
                def.group,
                def.resource,
                &items,
                include,
                &revision.to_string(),
                None,
                chrono::Utc::now(),
            );
            return Ok(Some(ListOutput::Reply(JsonReply { code: 200, body: table, warnings: Vec::new() })));
        }
        let matching: Vec<_> = matching.collect();
        let head = format!(
            r#"{{"kind":"{}","apiVersion":"{}","metadata":{{"resourceVersion":"{revision}"}},"items":["#,
            def.list_kind(),
            def.api_version()
        );
        // One allocation of the final size: a 10k-pod list is tens of MiB, and growing it by
        // doubling leaves the allocator holding several times that.
        let size = head.len() + matching.iter().map(|o| o.json.len() + 1).sum::<usize>() + 2;
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(head.as_bytes());
        for (i, obj) in matching.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&obj.json);
        }
        out.extend_from_slice(b"]}");
        Ok(Some(ListOutput::Raw(Bytes::from(out))))
    }

    /// A `resourceVersion=0` get: this replica's cached object, without a quorum round.
    pub async fn get_from_cache(&self, req: &ResourceRequest<'_>) -> Result<Option<Value>, ApiError> {
        let def = req.target.def;
        let Some(name) = req.target.name.as_deref() else { return Ok(None) };
        let Ok(cache) = self.objects.cache(def).await else { return Ok(None) };
        let key = def.key(req.target.namespace.as_deref(), name);
        match cache.get(&key) {
            Some(obj) => obj.value().map(Some),
            None => Err(ApiError::not_found(def.group, def.resource, name)),
        }
    }
}
