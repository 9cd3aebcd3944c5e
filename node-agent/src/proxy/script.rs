//! `nft -f` transactions that bring the kernel's table to a [`RuleSet`]. Pure.
//!
//! Each script is applied as one transaction: packets see the old table or the new one, never a
//! mix. Two kinds:
//! - [`full`]: writes the whole table whatever the kernel holds (`flush table` empties every chain,
//!   the static maps are flushed and refilled, objects the kernel has beyond the rule set are
//!   deleted). Its cost grows with the table, not with what changed. Affinity sets are declared,
//!   never flushed, so clients keep their endpoints.
//! - [`diff`]: from the table last applied to the new one, touching only chains and elements that
//!   changed; a change to one Service costs the same with 10 or 10,000 Services.
//!
//! Order inside a transaction matters: nft refuses to delete a chain or set that a rule or map
//! element still references, so references go first (elements deleted, chains flushed), then the
//! objects, then whatever is added.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::model::{Chain, Elements, NamedSet, RuleSet, SetKind};

/// Names of the chains, sets and maps of one table in the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelObjects {
    pub chains: BTreeSet<String>,
    pub sets: BTreeMap<String, SetKind>,
}

/// Writes the whole of `desired`, deleting whatever else the kernel's table (`existing`) holds.
pub fn full(desired: &RuleSet, existing: &KernelObjects) -> String {
    let t = format!("ip {}", desired.table);
    let mut out = String::with_capacity(estimated_size(desired));
    let _ = writeln!(out, "add table {t}");
    let _ = writeln!(out, "flush table {t}");
    for (name, chain) in &desired.chains {
        add_chain(&mut out, &t, name, chain);
    }
    for (name, set) in &desired.sets {
        add_set(&mut out, &t, name, set);
        if matches!(set.elements, Elements::Static(_)) {
            let _ = writeln!(out, "flush {} {t} {name}", set.kind.keyword());
        }
    }
    // Stale maps may reference stale chains: sets go first.
    for (name, kind) in &existing.sets {
        if !desired.sets.contains_key(name) {
            let _ = writeln!(out, "delete {} {t} {name}", kind.keyword());
        }
    }
    for name in &existing.chains {
        if !desired.chains.contains_key(name) {
            let _ = writeln!(out, "delete chain {t} {name}");
        }
    }
    for (name, chain) in &desired.chains {
        add_rules(&mut out, &t, name, chain);
    }
    for (name, set) in &desired.sets {
        if let Some(elements) = set.static_elements() {
            add_elements(&mut out, &t, name, elements.iter());
        }
    }
    out
}

/// The transaction from `applied` (what the kernel holds, written by an earlier script) to
/// `desired`; `None` when they are the same. Both must be of the same table, rendered by the same
/// build (base chains and static declarations never differ).
pub fn diff(applied: &RuleSet, desired: &RuleSet) -> Option<String> {
    if applied.chains == desired.chains && applied.sets == desired.sets {
        return None;
    }
    let t = format!("ip {}", desired.table);
    let mut out = String::new();
    // 1. Elements that go or change, from the maps and sets that stay.
    for (name, old) in &applied.sets {
        let (Some(old), Some(new)) = (old.static_elements(), desired.sets.get(name).and_then(|s| s.static_elements()))
        else {
            continue;
        };
        let gone: Vec<&String> = old.iter().filter(|(k, v)| new.get(*k) != Some(*v)).map(|(k, _)| k).collect();
        if !gone.is_empty() {
            let _ = writeln!(out, "delete element {t} {name} {{ {} }}", join(gone.into_iter()));
        }
    }
    // 2. Chains that change or go are emptied, dropping their references to other chains and sets.
    let changed: Vec<&String> = desired
        .chains
        .iter()
        .filter(|(name, chain)| applied.chains.get(*name).is_some_and(|old| old != *chain))
        .map(|(name, _)| name)
        .collect();
    let removed: Vec<&String> = applied.chains.keys().filter(|name| !desired.chains.contains_key(*name)).collect();
    for name in changed.iter().chain(&removed) {
        let _ = writeln!(out, "flush chain {t} {name}");
    }
    // 3. Then the objects that go: sets first (a map's elements may reference chains).
    for (name, set) in &applied.sets {
        if !desired.sets.contains_key(name) {
            let _ = writeln!(out, "delete {} {t} {name}", set.kind.keyword());
        }
    }
    for name in &removed {
        let _ = writeln!(out, "delete chain {t} {name}");
    }
    // 4. New objects (a set whose declaration changed, an affinity timeout, is declared again).
    for (name, set) in &desired.sets {
        if applied.sets.get(name).is_none_or(|old| old.declaration != set.declaration) {
            add_set(&mut out, &t, name, set);
        }
    }
    for (name, chain) in &desired.chains {
        if !applied.chains.contains_key(name) {
            add_chain(&mut out, &t, name, chain);
        }
    }
    // 5. Rules of new and changed chains, then new and changed elements.
    for (name, chain) in &desired.chains {
        if applied.chains.get(name) != Some(chain) {
            add_rules(&mut out, &t, name, chain);
        }
    }
    for (name, set) in &desired.sets {
        let Some(new) = set.static_elements() else { continue };
        let old = applied.sets.get(name).and_then(NamedSet::static_elements);
        add_elements(&mut out, &t, name, new.iter().filter(|(k, v)| old.and_then(|o| o.get(*k)) != Some(*v)));
    }
    Some(out)
}

/// Deletes the table `table` if it exists (`--cleanup`).
pub fn delete_table(table: &str) -> String {
    // Declaring it first makes the deletion succeed when there is no such table.
    format!("add table ip {table}\ndelete table ip {table}\n")
}

fn add_chain(out: &mut String, t: &str, name: &str, chain: &Chain) {
    match chain.hook {
        Some(h) => {
            let _ =
                writeln!(out, "add chain {t} {name} {{ type {} hook {} priority {}; }}", h.kind, h.hook, h.priority);
        }
        None => {
            let _ = writeln!(out, "add chain {t} {name}");
        }
    }
}

fn add_set(out: &mut String, t: &str, name: &str, set: &NamedSet) {
    let _ = writeln!(out, "add {} {t} {name} {{ {} }}", set.kind.keyword(), set.declaration);
}

fn add_rules(out: &mut String, t: &str, name: &str, chain: &Chain) {
    for rule in &chain.rules {
        let _ = writeln!(out, "add rule {t} {name} {rule}");
    }
}

/// Elements as `key : value` (maps) or `key` (sets).
fn add_elements<'a>(out: &mut String, t: &str, name: &str, elements: impl Iterator<Item = (&'a String, &'a String)>) {
    let items: Vec<String> =
        elements.map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k} : {v}") }).collect();
    if !items.is_empty() {
        let _ = writeln!(out, "add element {t} {name} {{ {} }}", items.join(", "));
    }
}

fn join<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    keys.map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// Rough script size, to allocate once.
fn estimated_size(rs: &RuleSet) -> usize {
    (rs.rule_count() + rs.chains.len()) * 120 + rs.element_count() * 60 + 4096
}

#[cfg(test)]
#[path = "script_tests.rs"]
mod tests;
