//! `--prepare-only`: the notebook as papermill's `--prepare-only` writes it.
//!
//! Nothing runs, so nothing of the saved notebook is reset: outputs and execution
//! counts stay, and each cell read from the file carries `metadata.papermill`
//! (empty when it had none), as papermill leaves it. The notebook's
//! `metadata.papermill` names the input and output and holds the parameters, with no
//! times: none were taken. (Papermill also adds `tags: []` to untagged cells and its
//! own `version`, `default_parameters` and `environment_variables`; nbexec writes
//! those on no run.)

use serde_json::{Map, Value};

use nbexec_format::Notebook;
use nbexec_runner::{INJECTED_TAG, RunOptions, metadata};

/// Prepares an injected notebook for saving without running it.
pub(crate) fn prepare_only(nb: &mut Notebook, opts: &RunOptions, output: Option<&str>) {
    metadata::remove_error_markers(nb);
    for cell in nb.cells_mut() {
        // The injected cell is new: papermill adds it after marking the file's cells.
        if !cell.has_tag(INJECTED_TAG) {
            let md = cell.metadata_mut();
            if !md.contains_key("papermill") {
                md.insert("papermill".into(), Value::Object(Map::new()));
            }
        }
        if opts.report_mode && cell.is_code() {
            let md = cell.metadata_mut();
            let jupyter = md
                .entry("jupyter")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(j) = jupyter {
                j.insert("source_hidden".into(), Value::Bool(true));
            }
        }
    }
    let md = nb.metadata_mut();
    let slot = md
        .entry("papermill")
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(pm) = slot {
        pm.insert(
            "input_path".into(),
            opts.input_path.as_deref().map_or(Value::Null, Value::from),
        );
        pm.insert(
            "output_path".into(),
            output.map_or(Value::Null, Value::from),
        );
        pm.entry("parameters")
            .or_insert_with(|| Value::Object(Map::new()));
    }
}
