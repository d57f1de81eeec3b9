use serde_json::Value;

use crate::metadata::CellStatus;

/// What happens during a run, as it happens. The progress bar and `--log-output` are
/// built on these; embedders receive the same.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunEvent<'a> {
    /// The kernel is up; `cells` code cells will run.
    KernelReady {
        kernel: &'a str,
        cells: usize,
    },
    /// Cell `index` (in the notebook) started; it is the `number`-th of `total` to run.
    CellStarted {
        index: usize,
        number: usize,
        total: usize,
    },
    /// Text a cell wrote to `stdout` or `stderr`, exactly as the kernel sent it.
    Stream {
        index: usize,
        name: &'a str,
        text: &'a str,
    },
    /// A new output (display data, result, error) of cell `index`.
    Output {
        index: usize,
        output: &'a Value,
    },
    CellFinished {
        index: usize,
        status: CellStatus,
    },
    /// The notebook was written to `path` (a checkpoint or the final save).
    Saved {
        path: &'a std::path::Path,
    },
}
