//! Column definitions and the printer type every resource's table is made of.
//!
//! Pure data; must not depend on the HTTP server or the store.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// One `metav1.TableColumnDefinition`. Priority 0 columns show by default, 1 only with `-o wide`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Column {
    pub name: &'static str,
    pub kind: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: u8,
}

impl Column {
    pub(super) fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// A default (priority 0) column.
pub(super) const fn col(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column { name, kind, format: "", description, priority: 0 }
}

/// A wide-only (priority 1) column.
pub(super) const fn wide(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column { name, kind, format: "", description, priority: 1 }
}

/// The Name column every printer starts with.
pub(super) const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "Name must be unique within a namespace. Cannot be updated.",
    priority: 0,
};

/// The Age column, from `metadata.creationTimestamp`.
pub(super) const AGE: Column =
    col("Age", "string", "CreationTimestamp is a timestamp representing the server time when this object was created.");

/// Container names of the pod template (wide).
pub(super) const CONTAINERS: Column = wide("Containers", "string", "Names of each container in the template.");
/// Container images of the pod template (wide).
pub(super) const IMAGES: Column = wide("Images", "string", "Images referenced by each container in the template.");
/// The label selector (wide).
pub(super) const SELECTOR: Column = wide("Selector", "string", "Label query over the pods this object manages.");

/// One `metav1.TableRow` before the object is attached.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Row {
    pub cells: Vec<Value>,
    /// `metav1.TableRowCondition`s (only pods set any: `Completed` for finished pods).
    pub conditions: Vec<Value>,
}

impl From<Vec<Value>> for Row {
    fn from(cells: Vec<Value>) -> Self {
        Self { cells, conditions: Vec::new() }
    }
}

/// How one resource prints: its columns and a row per object (cells for every column, wide included,
/// as the API server always generates wide tables and kubectl hides priority-1 columns).
#[derive(Clone, Copy)]
pub(super) struct Printer {
    pub columns: &'static [Column],
    pub row: fn(&Value, DateTime<Utc>) -> Row,
}
