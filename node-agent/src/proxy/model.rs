//! The service proxy's nftables table as a value: its chains with their rules and its named maps and
//! sets with their elements. [`super::render`] builds one from the service catalog, [`super::script`]
//! turns one (or the difference of two) into an `nft -f` transaction. Pure: no I/O.
//!
//! Rules are kept as nft statement text (what `nft -f` reads); names are plain nft identifiers
//! (letters, digits, `-`, `_`, `.` and `/`), so they are written unquoted.

use std::collections::BTreeMap;

/// The hook a base chain is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// `nat` or `filter`.
    pub kind: &'static str,
    /// `prerouting`, `input`, `forward`, `output` or `postrouting`.
    pub hook: &'static str,
    /// Numeric: nft 1.0.6 accepts the names (`dstnat`) on some hooks only.
    pub priority: i32,
}

/// One chain: a base chain (attached to a hook) or a regular one (reached by jumps and verdict maps).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    pub hook: Option<Hook>,
    pub rules: Vec<String>,
}

impl Chain {
    pub fn regular(rules: Vec<String>) -> Self {
        Self { hook: None, rules }
    }
}

/// Whether a named collection is a map or a set (nft spells their commands differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    Map,
    Set,
}

impl SetKind {
    pub fn keyword(self) -> &'static str {
        match self {
            SetKind::Map => "map",
            SetKind::Set => "set",
        }
    }
}

/// The elements of a named map or set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elements {
    /// Written by the proxy: key → value (an empty value for a set).
    Static(BTreeMap<String, String>),
    /// Filled by the packet path (`update @set { ip saddr }`): the proxy declares the set and never
    /// touches its elements, so they outlive syncs.
    Dynamic,
}

/// A named map or set: its kind, its declaration (the text inside `{ }`) and its elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSet {
    pub kind: SetKind,
    pub declaration: String,
    pub elements: Elements,
}

impl NamedSet {
    pub fn with_elements(kind: SetKind, declaration: &str) -> Self {
        Self { kind, declaration: declaration.into(), elements: Elements::Static(BTreeMap::new()) }
    }

    /// Adds (or replaces) an element; a no-op on a dynamic set.
    pub fn insert(&mut self, key: String, value: String) {
        if let Elements::Static(elements) = &mut self.elements {
            elements.insert(key, value);
        }
    }

    /// The static elements (none for a dynamic set).
    pub fn static_elements(&self) -> Option<&BTreeMap<String, String>> {
        match &self.elements {
            Elements::Static(e) => Some(e),
            Elements::Dynamic => None,
        }
    }
}

/// What a rule set programs, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Service ports with a ClusterIP or a NodePort entry (with or without endpoints).
    pub service_ports: usize,
    /// Endpoints (address and port) traffic is spread over, summed over service ports.
    pub endpoints: usize,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    /// nft table name (family `ip`).
    pub table: String,
    pub chains: BTreeMap<String, Chain>,
    pub sets: BTreeMap<String, NamedSet>,
    pub counts: Counts,
}

impl RuleSet {
    pub fn new(table: &str) -> Self {
        Self { table: table.into(), chains: BTreeMap::new(), sets: BTreeMap::new(), counts: Counts::default() }
    }

    /// Rules over all chains (an inline anonymous map counts as part of its rule).
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(|c| c.rules.len()).sum()
    }

    /// Elements over all static maps and sets.
    pub fn element_count(&self) -> usize {
        self.sets.values().filter_map(NamedSet::static_elements).map(BTreeMap::len).sum()
    }
}

/// Whether `s` can be written as an unquoted nft identifier after a fixed prefix (nft 1.0.6 takes no
/// quoted chain or set names).
pub fn is_identifier_text(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `s` if it is safe inside an identifier, else a stable stand-in (`x` and a hash of `s`): names come
/// from API objects and must never become nft syntax.
pub fn identifier_part(s: &str) -> String {
    if is_identifier_text(s) {
        s.to_string()
    } else {
        hashed_identifier(s)
    }
}

/// `x` and a hash of `s`: an identifier standing for text that is unsafe or too long.
pub fn hashed_identifier(s: &str) -> String {
    format!("x{:016x}", fnv1a(s.as_bytes()))
}

/// 64-bit FNV-1a: stable across runs and builds (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// nft object names are at most 255 bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The table of node `node`: nodes on one machine (tests, `kind`-style setups) each get their own.
pub fn table_name(node: &str) -> String {
    let name = format!("gantry-proxy-{}", identifier_part(node));
    if name.len() <= MAX_NAME_LEN {
        name
    } else {
        format!("gantry-proxy-{}", hashed_identifier(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_from_api_names_cannot_inject_syntax() {
        assert_eq!(identifier_part("web-1.example"), "web-1.example");
        let odd = identifier_part("a b;flush ruleset");
        assert!(odd.starts_with('x') && odd.len() == 17 && is_identifier_text(&odd), "{odd}");
        assert_eq!(odd, identifier_part("a b;flush ruleset"), "stable");
        assert_ne!(odd, identifier_part("a b;flush ruleset!"));
        assert!(identifier_part("").starts_with('x'));
    }

    #[test]
    fn table_names_follow_the_node_and_stay_short() {
        assert_eq!(table_name("node-1"), "gantry-proxy-node-1");
        let long = "a".repeat(253);
        let name = table_name(&long);
        assert!(name.len() <= MAX_NAME_LEN && name.starts_with("gantry-proxy-x"), "{name}");
    }

    #[test]
    fn counts_cover_rules_and_static_elements() {
        let mut rs = RuleSet::new("t");
        rs.chains.insert("a".into(), Chain::regular(vec!["accept".into(), "drop".into()]));
        let mut map = NamedSet::with_elements(SetKind::Map, "type inet_service : verdict;");
        map.insert("80".into(), "goto a".into());
        rs.sets.insert("m".into(), map);
        let mut dynamic = NamedSet::with_elements(SetKind::Set, "type ipv4_addr;");
        dynamic.elements = Elements::Dynamic;
        dynamic.insert("1.2.3.4".into(), String::new());
        rs.sets.insert("d".into(), dynamic);
        assert_eq!((rs.rule_count(), rs.element_count()), (2, 1));
    }
}
