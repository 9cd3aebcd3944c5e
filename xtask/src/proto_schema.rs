//! `cargo xtask gen-proto-schema`: generates the Kubernetes protobuf schema table that the API server uses to
//! turn `application/vnd.kubernetes.protobuf` request bodies into JSON
//! (`control-plane/src/api/protobuf/schema.rs`).
//!
//! The generator only reads source text already in the cargo registry: the prost structs of the `k8s-pb` crate
//! give field tags and wire types, and the serde impls of `k8s-openapi` give the exact JSON field names (such as
//! `volumeID` or `podIPs`) and the (apiVersion, kind) of each top-level resource. Neither crate becomes a
//! dependency of anything. Kubernetes-specific JSON forms (Time, IntOrString, Quantity, ...) are not decided
//! here: the runtime decoder recognises those messages by name.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::util::{say, step, warn};

const K8S_PB_DIR: &str = "k8s-pb-0.9.0";
const K8S_OPENAPI_DIR: &str = "k8s-openapi-0.29.0";
const K8S_OPENAPI_VERSION: &str = "v1_35";
const OUTPUT: &str = "control-plane/src/api/protobuf/schema.rs";

/// Packages whose messages are all included; anything they reference is added too.
const SERVED_PACKAGES: &[&str] = &[
    "api.core.v1",
    "api.apps.v1",
    "api.batch.v1",
    "api.coordination.v1",
    "api.discovery.v1",
    "api.policy.v1",
    "api.rbac.v1",
    "api.autoscaling.v1",
    "api.authorization.v1",
    "api.authentication.v1",
    "apimachinery.pkg.apis.meta.v1",
    "apimachinery.pkg.util.intstr",
    "apimachinery.pkg.api.resource",
    "apimachinery.pkg.runtime",
];

/// Options of `cargo xtask gen-proto-schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the table, relative to the workspace root.
    #[arg(long, default_value = OUTPUT)]
    output: PathBuf,
}

/// The wire type of a field as declared by prost.
#[derive(Debug, Clone, PartialEq)]
enum Wire {
    String,
    Int32,
    Int64,
    Bool,
    Bytes,
    Double,
    /// A message, by fully qualified name (`api.core.v1.Container`).
    Message(String),
    MapString,
    MapBytes,
    /// A map from string to a message, by fully qualified name.
    MapMessage(String),
}

#[derive(Debug)]
struct ProtoField {
    tag: u32,
    rust_name: String,
    wire: Wire,
    repeated: bool,
}

#[derive(Debug, Default)]
struct ProtoMessage {
    fields: Vec<ProtoField>,
}

/// What k8s-openapi knows about one type: its JSON keys and, for resources, its apiVersion and kind.
#[derive(Debug, Default)]
struct OpenApiType {
    json_keys: Vec<String>,
    resource: Option<(String, String)>,
}

pub fn run(args: Args) -> Result<()> {
    let registry = registry_src()?;
    let pb_root = find_crate(&registry, K8S_PB_DIR)?;
    let openapi_root = find_crate(&registry, K8S_OPENAPI_DIR)?.join("src").join(K8S_OPENAPI_VERSION);
    step(format!("reading prost messages from {}", pb_root.display()));
    let messages = read_pb_messages(&pb_root.join("src"))?;
    step(format!("reading JSON names from {}", openapi_root.display()));
    let openapi = read_openapi_types(&openapi_root)?;
    let included = closure(&messages)?;
    let text = render(&messages, &openapi, &included)?;
    let out = workspace_root().join(&args.output);
    fs::write(&out, text).with_context(|| format!("failed to write {}", out.display()))?;
    say(format!("wrote {} ({} messages)", out.display(), included.len()));
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// `$CARGO_HOME/registry/src`, defaulting `CARGO_HOME` to `~/.cargo`.
fn registry_src() -> Result<PathBuf> {
    let home = match std::env::var_os("CARGO_HOME") {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from(std::env::var_os("HOME").ok_or_else(|| anyhow!("neither CARGO_HOME nor HOME is set"))?)
            .join(".cargo"),
    };
    Ok(home.join("registry").join("src"))
}

/// Finds `<registry>/<index>/<dir>`; the crate must already have been downloaded by cargo.
fn find_crate(registry: &Path, dir: &str) -> Result<PathBuf> {
    let entries = fs::read_dir(registry).with_context(|| format!("cannot read {}", registry.display()))?;
    for entry in entries {
        let candidate = entry?.path().join(dir);
        if candidate.is_dir() {
            return Ok(candidate);
        }
    }
    bail!("{dir} is not in {}; fetch it once with cargo (e.g. a scratch crate depending on it)", registry.display())
}

/// Every `*.rs` file below `dir`, sorted so that output is stable.
fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The dotted module path of a source directory relative to the crate's module root (`api.core.v1`).
fn module_path(root: &Path, dir: &Path) -> Result<Vec<String>> {
    let rel = dir.strip_prefix(root).with_context(|| format!("{} is outside {}", dir.display(), root.display()))?;
    Ok(rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect())
}

fn read_pb_messages(src: &Path) -> Result<BTreeMap<String, ProtoMessage>> {
    let mut messages = BTreeMap::new();
    for file in rust_files(src)? {
        if file.file_name().is_none_or(|n| n != "mod.rs") {
            continue;
        }
        let module = module_path(src, file.parent().unwrap_or(src))?;
        let text = fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        parse_pb_module(&text, &module, &mut messages).with_context(|| format!("while parsing {}", file.display()))?;
    }
    Ok(messages)
}

/// Parses the prost structs of one generated module.
fn parse_pb_module(text: &str, module: &[String], out: &mut BTreeMap<String, ProtoMessage>) -> Result<()> {
    let mut current: Option<(String, ProtoMessage)> = None;
    let mut pending_attr: Option<String> = None;
    let mut pending_decl = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.trim_end_matches('{').trim().to_string();
            current = Some((name, ProtoMessage::default()));
            continue;
        }
        if line == "}" {
            if let Some((name, msg)) = current.take() {
                out.insert(qualify(module, &name), msg);
            }
            continue;
        }
        let Some((_, msg)) = current.as_mut() else { continue };
        if trimmed.starts_with("#[prost(") {
            pending_attr = Some(trimmed.to_string());
            pending_decl.clear();
            continue;
        }
        let Some(attr) = pending_attr.as_ref() else { continue };
        if trimmed.starts_with("///") || trimmed.starts_with("#[") {
            continue;
        }
        pending_decl.push_str(trimmed);
        if !(pending_decl.ends_with(',') && angle_balanced(&pending_decl)) {
            continue;
        }
        msg.fields.push(parse_field(attr, &pending_decl, module)?);
        pending_attr = None;
        pending_decl.clear();
    }
    Ok(())
}

fn angle_balanced(s: &str) -> bool {
    s.matches('<').count() == s.matches('>').count()
}

fn qualify(module: &[String], name: &str) -> String {
    let mut parts = module.to_vec();
    parts.push(name.to_string());
    parts.join(".")
}

/// Parses `#[prost(string, optional, tag = "1")]` plus `pub name: Type,`.
fn parse_field(attr: &str, decl: &str, module: &[String]) -> Result<ProtoField> {
    let inner = attr.trim_start_matches("#[prost(").trim_end_matches(")]");
    let tag = inner
        .split("tag = \"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .ok_or_else(|| anyhow!("no tag in {attr}"))?
        .parse::<u32>()
        .with_context(|| format!("bad tag in {attr}"))?;
    let (name, ty) = decl
        .trim_start_matches("pub ")
        .split_once(':')
        .ok_or_else(|| anyhow!("cannot parse field declaration {decl}"))?;
    let rust_name = name.trim().trim_start_matches("r#").to_string();
    let ty = ty.trim().trim_end_matches(',');
    let repeated = inner.contains("repeated");
    let kind = inner.split(',').next().unwrap_or("").trim();
    let wire = if kind.starts_with("btree_map") || kind.starts_with("map") {
        let value = inner.split(", ").nth(1).map(|v| v.trim_matches('"')).unwrap_or("");
        match value {
            "string" => Wire::MapString,
            "bytes" => Wire::MapBytes,
            "message" => Wire::MapMessage(resolve_type(ty, module)?),
            other => bail!("unsupported map value type {other} in {attr}"),
        }
    } else {
        match kind.split('=').next().unwrap_or("").trim() {
            "string" => Wire::String,
            "int32" => Wire::Int32,
            "int64" => Wire::Int64,
            "bool" => Wire::Bool,
            "bytes" => Wire::Bytes,
            "double" => Wire::Double,
            "message" => Wire::Message(resolve_type(ty, module)?),
            other => bail!("unsupported prost field kind {other} in {attr}"),
        }
    };
    Ok(ProtoField { tag, rust_name, wire, repeated })
}

/// Resolves the message type named in a rust field type to a fully qualified name, following `super::`.
fn resolve_type(ty: &str, module: &[String]) -> Result<String> {
    const WRAPPERS: &[&str] = &[
        "::core::option::Option",
        "::prost::alloc::vec::Vec",
        "::prost::alloc::boxed::Box",
        "::prost::alloc::collections::BTreeMap",
        "::prost::alloc::string::String",
    ];
    let path = ty
        .split(['<', '>', ','])
        .map(str::trim)
        .rfind(|p| !p.is_empty() && !WRAPPERS.contains(p))
        .ok_or_else(|| anyhow!("no message type in {ty}"))?;
    let mut base = module.to_vec();
    let mut segments = path.split("::").peekable();
    while segments.peek() == Some(&"super") {
        segments.next();
        base.pop().ok_or_else(|| anyhow!("too many `super` in {ty}"))?;
    }
    base.extend(segments.map(str::to_string));
    Ok(base.join("."))
}

/// Reads every k8s-openapi type file: its JSON keys and its resource identity.
fn read_openapi_types(root: &Path) -> Result<BTreeMap<String, OpenApiType>> {
    let mut types = BTreeMap::new();
    for file in rust_files(root)? {
        let text = fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let Some(name) = text.lines().find_map(|l| l.strip_prefix("pub struct ")) else { continue };
        let name = name.split([' ', '{', '(', '<', ';']).next().unwrap_or("");
        let module = module_path(root, file.parent().unwrap_or(root))?;
        let mut ty = OpenApiType::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some((key, _)) = line.strip_prefix('"').and_then(|l| l.split_once("\" => Field::Key_")) {
                ty.json_keys.push(key.to_string());
            }
        }
        let api_version = const_str(&text, "API_VERSION");
        let kind = const_str(&text, "KIND");
        if let (Some(v), Some(k)) = (api_version, kind) {
            ty.resource = Some((v, k));
        }
        types.insert(format!("{}.{}", module.join("."), normalise(name)), ty);
    }
    Ok(types)
}

fn const_str(text: &str, name: &str) -> Option<String> {
    let marker = format!("const {name}: &'static str = \"");
    let start = text.find(&marker)? + marker.len();
    text[start..].split('"').next().map(str::to_string)
}

/// Case- and underscore-insensitive form used to match prost names to k8s-openapi and JSON names.
fn normalise(name: &str) -> String {
    name.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

/// The served packages' messages plus every message they reference, transitively.
fn closure(messages: &BTreeMap<String, ProtoMessage>) -> Result<BTreeSet<String>> {
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<String> = messages
        .keys()
        .filter(|name| SERVED_PACKAGES.iter().any(|p| name.rsplit_once('.').is_some_and(|(pkg, _)| pkg == *p)))
        .cloned()
        .collect();
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let msg = messages.get(&name).ok_or_else(|| anyhow!("message {name} is referenced but not defined"))?;
        for field in &msg.fields {
            if let Wire::Message(t) | Wire::MapMessage(t) = &field.wire {
                queue.push_back(t.clone());
            }
        }
    }
    Ok(seen)
}

/// Whether a message field is a Go struct embedded with `json:",inline"`: its name is not a JSON key of the
/// parent, but every field of the embedded message is.
fn is_inlined(parent: &OpenApiType, rust_name: &str, child: &ProtoMessage) -> bool {
    let has_key = |name: &str| parent.json_keys.iter().any(|k| normalise(k) == normalise(name));
    !has_key(rust_name) && !child.fields.is_empty() && child.fields.iter().all(|f| has_key(&f.rust_name))
}

fn lower_camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn render(
    messages: &BTreeMap<String, ProtoMessage>,
    openapi: &BTreeMap<String, OpenApiType>,
    included: &BTreeSet<String>,
) -> Result<String> {
    let index: BTreeMap<&str, usize> = included.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let idx = |name: &str| index.get(name).copied().ok_or_else(|| anyhow!("{name} is not in the table"));
    let mut out = String::new();
    out.push_str(
        "// @generated by `cargo xtask gen-proto-schema` from the k8s-pb 0.9.0 prost structs (tags, wire types)\n\
         // and the k8s-openapi 0.29.0 v1_35 serde impls (JSON names, resource kinds). Do not edit by hand:\n\
         // change xtask/src/proto_schema.rs and run `cargo xtask gen-proto-schema`.\n\
         //! Generated Kubernetes protobuf schema: messages sorted by name, fields sorted by tag.\n\n\
         use super::schema_model::{FieldSchema as F, FieldType::*, KindSchema, MessageSchema};\n\n",
    );
    let _ = writeln!(out, "pub static MESSAGES: &[MessageSchema] = &[");
    let mut fallbacks = 0usize;
    let mut kinds = Vec::new();
    for (i, name) in included.iter().enumerate() {
        let msg = &messages[name];
        let (pkg, short) = name.rsplit_once('.').unwrap_or(("", name));
        let api = openapi.get(&format!("{pkg}.{}", normalise(short)));
        if let Some((version, kind)) = api.and_then(|a| a.resource.as_ref()) {
            if SERVED_PACKAGES.contains(&pkg) {
                kinds.push((version.clone(), kind.clone(), i));
            }
        }
        let _ = writeln!(out, "    // {i}");
        let _ = writeln!(out, "    MessageSchema {{ name: {name:?}, fields: &[");
        let mut fields: Vec<&ProtoField> = msg.fields.iter().collect();
        fields.sort_by_key(|f| f.tag);
        for f in fields {
            if let (Some(api), Wire::Message(child)) = (api, &f.wire) {
                if !f.repeated && is_inlined(api, &f.rust_name, &messages[child]) {
                    let _ = writeln!(
                        out,
                        "        F {{ tag: {}, json: \"\", ty: Inline({}), repeated: false }},",
                        f.tag,
                        idx(child)?
                    );
                    continue;
                }
            }
            let json = api
                .and_then(|a| a.json_keys.iter().find(|k| normalise(k) == normalise(&f.rust_name)))
                .cloned()
                .unwrap_or_else(|| {
                    if api.is_some() {
                        fallbacks += 1;
                        warn(format!("{name}.{}: no JSON name in k8s-openapi, using lowerCamelCase", f.rust_name));
                    }
                    lower_camel(&f.rust_name)
                });
            let ty = match &f.wire {
                Wire::String => "Str".to_string(),
                Wire::Int32 => "Int32".to_string(),
                Wire::Int64 => "Int64".to_string(),
                Wire::Bool => "Bool".to_string(),
                Wire::Bytes => "Bytes".to_string(),
                Wire::Double => "Double".to_string(),
                Wire::Message(t) => format!("Message({})", idx(t)?),
                Wire::MapString => "MapStr".to_string(),
                Wire::MapBytes => "MapBytes".to_string(),
                Wire::MapMessage(t) => format!("MapMessage({})", idx(t)?),
            };
            let _ =
                writeln!(out, "        F {{ tag: {}, json: {json:?}, ty: {ty}, repeated: {} }},", f.tag, f.repeated);
        }
        let _ = writeln!(out, "    ] }},");
    }
    out.push_str("];\n\n");
    kinds.sort();
    let _ = writeln!(out, "/// Top-level kinds by (apiVersion, kind), sorted, pointing into [`MESSAGES`].");
    let _ = writeln!(out, "pub static KINDS: &[KindSchema] = &[");
    for (version, kind, i) in &kinds {
        let _ = writeln!(out, "    KindSchema {{ api_version: {version:?}, kind: {kind:?}, message: {i} }},");
    }
    out.push_str("];\n");
    if fallbacks > 0 {
        warn(format!("{fallbacks} fields fell back to lowerCamelCase JSON names"));
    }
    say(format!("{} kinds", kinds.len()));
    Ok(out)
}
