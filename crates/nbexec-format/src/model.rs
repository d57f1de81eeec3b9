use serde_json::{Map, Value};

/// A notebook: its cells, and every other top-level key exactly as read.
///
/// Multi-line strings (sources, stream text, `text/*` data) are held joined, as
/// Python nbformat holds them in memory; the writer splits them again.
#[derive(Debug, Clone, PartialEq)]
pub struct Notebook {
    /// Top-level keys other than `cells` (`metadata`, `nbformat`, `nbformat_minor`,
    /// and anything unknown).
    pub(crate) top: Map<String, Value>,
    pub(crate) cells: Vec<Cell>,
}

/// One cell, held as the raw JSON object it was read from.
///
/// Typed accessors cover what the engine uses; everything else stays in the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub(crate) raw: Map<String, Value>,
}

fn empty_map() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

/// Returns `map[key]` as an object, creating it (or replacing a non-object) first.
pub(crate) fn object_entry<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> &'a mut Map<String, Value> {
    let slot = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("slot was just made an object"),
    }
}

impl Notebook {
    /// A new, empty nbformat 4.5 notebook.
    pub fn new() -> Notebook {
        let mut top = Map::new();
        top.insert("metadata".into(), Value::Object(Map::new()));
        top.insert("nbformat".into(), Value::from(4));
        top.insert("nbformat_minor".into(), Value::from(5));
        Notebook {
            top,
            cells: Vec::new(),
        }
    }

    /// The cells, in order.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// The cells, to add, remove or change.
    pub fn cells_mut(&mut self) -> &mut Vec<Cell> {
        &mut self.cells
    }

    /// `(major, minor)` of the notebook format.
    pub fn nbformat(&self) -> (u64, u64) {
        let get = |k: &str| self.top.get(k).and_then(Value::as_u64).unwrap_or(0);
        (get("nbformat"), get("nbformat_minor"))
    }

    /// Sets the minor version (used when a feature needs 4.5, e.g. cell ids).
    pub fn set_nbformat_minor(&mut self, minor: u64) {
        self.top.insert("nbformat_minor".into(), Value::from(minor));
    }

    /// Do cells of this notebook carry ids (nbformat 4.5 and later)?
    pub fn has_cell_ids(&self) -> bool {
        let (major, minor) = self.nbformat();
        major > 4 || (major == 4 && minor >= 5)
    }

    /// The notebook's `metadata` (empty if absent or not an object).
    pub fn metadata(&self) -> &Map<String, Value> {
        self.top
            .get("metadata")
            .and_then(Value::as_object)
            .unwrap_or_else(|| empty_map())
    }

    /// The notebook's `metadata`, created (or replacing a non-object) if needed.
    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        object_entry(&mut self.top, "metadata")
    }

    /// Top-level keys other than `cells`, as read.
    pub fn top_level(&self) -> &Map<String, Value> {
        &self.top
    }

    /// `metadata.kernelspec.name`.
    pub fn kernelspec_name(&self) -> Option<&str> {
        self.metadata().get("kernelspec")?.get("name")?.as_str()
    }

    /// The notebook's language: `metadata.language_info.name`, else
    /// `metadata.kernelspec.language`.
    pub fn language(&self) -> Option<&str> {
        let md = self.metadata();
        md.get("language_info")
            .and_then(|l| l.get("name"))
            .and_then(Value::as_str)
            .or_else(|| md.get("kernelspec")?.get("language")?.as_str())
    }

    /// A fresh cell id, unique in this notebook, if the notebook uses ids (4.5+).
    pub fn new_cell_id(&self) -> Option<String> {
        if !self.has_cell_ids() {
            return None;
        }
        Some(self.unique_id())
    }

    pub(crate) fn unique_id(&self) -> String {
        loop {
            // 8 lowercase hex characters, as Python nbformat's `random_cell_id`.
            let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
            if !self.cells.iter().any(|c| c.id() == Some(id.as_str())) {
                return id;
            }
        }
    }

    /// Gives every cell without an id a fresh one; returns how many were added.
    pub fn add_missing_ids(&mut self) -> usize {
        let mut added = 0;
        for i in 0..self.cells.len() {
            if self.cells[i].id().is_none() {
                let id = self.unique_id();
                self.cells[i].set_id(Some(id));
                added += 1;
            }
        }
        added
    }

    /// Gives each cell whose id an earlier cell already has a fresh id, as Python
    /// nbformat does on read; returns each `(old, new)` pair in cell order.
    pub fn replace_duplicate_ids(&mut self) -> Vec<(String, String)> {
        let mut seen = std::collections::HashSet::new();
        let mut replaced = Vec::new();
        for i in 0..self.cells.len() {
            let Some(id) = self.cells[i].id().map(str::to_owned) else {
                continue;
            };
            if seen.insert(id.clone()) {
                continue;
            }
            let fresh = self.unique_id();
            seen.insert(fresh.clone());
            self.cells[i].set_id(Some(fresh.clone()));
            replaced.push((id, fresh));
        }
        replaced
    }

    /// What Python nbformat drops on read and write: `metadata.orig_nbformat`,
    /// `orig_nbformat_minor`, `signature`, and each cell's `metadata.trusted`.
    pub fn strip_transient(&mut self) {
        if let Some(Value::Object(md)) = self.top.get_mut("metadata") {
            md.shift_remove("orig_nbformat");
            md.shift_remove("orig_nbformat_minor");
            md.shift_remove("signature");
        }
        for cell in &mut self.cells {
            if let Some(Value::Object(md)) = cell.raw.get_mut("metadata") {
                md.shift_remove("trusted");
            }
        }
    }
}

impl Default for Notebook {
    fn default() -> Self {
        Notebook::new()
    }
}

impl Cell {
    fn with_type(cell_type: &str, source: &str) -> Cell {
        let mut raw = Map::new();
        raw.insert("cell_type".into(), Value::from(cell_type));
        raw.insert("metadata".into(), Value::Object(Map::new()));
        raw.insert("source".into(), Value::from(source));
        Cell { raw }
    }

    /// A code cell with no outputs and a null execution count.
    pub fn new_code(source: &str) -> Cell {
        let mut cell = Cell::with_type("code", source);
        cell.raw.insert("execution_count".into(), Value::Null);
        cell.raw.insert("outputs".into(), Value::Array(Vec::new()));
        cell
    }

    /// A markdown cell.
    pub fn new_markdown(source: &str) -> Cell {
        Cell::with_type("markdown", source)
    }

    /// A raw cell.
    pub fn new_raw(source: &str) -> Cell {
        Cell::with_type("raw", source)
    }

    /// Wraps a JSON object as a cell, as it is.
    pub fn from_map(raw: Map<String, Value>) -> Cell {
        Cell { raw }
    }

    /// The raw JSON object (joined strings).
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.raw
    }

    /// The raw JSON object, to change anything the typed accessors do not cover.
    pub fn as_map_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.raw
    }

    /// `code`, `markdown`, `raw`, or whatever the file says.
    pub fn cell_type(&self) -> &str {
        self.raw
            .get("cell_type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Is this a code cell?
    pub fn is_code(&self) -> bool {
        self.cell_type() == "code"
    }

    /// The source, joined into one string.
    pub fn source(&self) -> &str {
        self.raw.get("source").and_then(Value::as_str).unwrap_or("")
    }

    /// Replaces the source (held joined; the writer splits it into lines).
    pub fn set_source(&mut self, source: &str) {
        self.raw.insert("source".into(), Value::from(source));
    }

    /// The cell id (nbformat 4.5+), if it has one.
    pub fn id(&self) -> Option<&str> {
        self.raw.get("id").and_then(Value::as_str)
    }

    /// Sets the cell id, or removes it with `None`.
    pub fn set_id(&mut self, id: Option<String>) {
        match id {
            Some(id) => {
                self.raw.insert("id".into(), Value::from(id));
            }
            None => {
                self.raw.shift_remove("id");
            }
        }
    }

    /// The cell's `metadata` (empty if absent or not an object).
    pub fn metadata(&self) -> &Map<String, Value> {
        self.raw
            .get("metadata")
            .and_then(Value::as_object)
            .unwrap_or_else(|| empty_map())
    }

    /// The cell's `metadata`, created (or replacing a non-object) if needed.
    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        object_entry(&mut self.raw, "metadata")
    }

    /// `metadata.tags`, the string ones.
    pub fn tags(&self) -> Vec<&str> {
        match self.metadata().get("tags") {
            Some(Value::Array(tags)) => tags.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Does `metadata.tags` hold `tag`?
    pub fn has_tag(&self, tag: &str) -> bool {
        matches!(self.metadata().get("tags"), Some(Value::Array(tags)) if tags.iter().any(|t| t.as_str() == Some(tag)))
    }

    /// Replaces `metadata.tags`; an empty list removes the key.
    pub fn set_tags(&mut self, tags: &[&str]) {
        let md = self.metadata_mut();
        if tags.is_empty() {
            md.shift_remove("tags");
        } else {
            md.insert(
                "tags".into(),
                Value::Array(tags.iter().map(|t| Value::from(*t)).collect()),
            );
        }
    }

    /// The outputs of a code cell (empty for other cells).
    pub fn outputs(&self) -> &[Value] {
        match self.raw.get("outputs") {
            Some(Value::Array(outputs)) => outputs,
            _ => &[],
        }
    }

    /// The outputs, created as `[]` if missing.
    pub fn outputs_mut(&mut self) -> &mut Vec<Value> {
        let slot = self
            .raw
            .entry("outputs")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        match slot {
            Value::Array(a) => a,
            _ => unreachable!("slot was just made an array"),
        }
    }

    /// `execution_count`: `None` when null or absent.
    pub fn execution_count(&self) -> Option<u64> {
        self.raw.get("execution_count").and_then(Value::as_u64)
    }

    /// Sets `execution_count` (`None` writes `null`).
    pub fn set_execution_count(&mut self, count: Option<u64>) {
        self.raw.insert(
            "execution_count".into(),
            count.map(Value::from).unwrap_or(Value::Null),
        );
    }
}
