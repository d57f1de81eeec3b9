//! `nbexec render`: an executed notebook as one self-contained HTML page, and the
//! `--report` file of `nbexec run`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use nbexec_format::Notebook;
use serde_json::Value;

use super::{EXIT_OK, EXIT_USAGE, error_line};

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The notebook to render (`-`: standard input)
    #[arg(value_name = "NOTEBOOK")]
    input: PathBuf,
    /// Where to write the HTML (`-`: stdout; default: stdout when it is not a terminal,
    /// else NOTEBOOK with `.html` for `.ipynb`)
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
    #[command(flatten)]
    html: HtmlArgs,
}

/// The options a report and `render` share.
#[derive(Args, Debug, Clone, Default)]
pub struct HtmlArgs {
    /// Hide the code of code cells in the HTML (outputs stay)
    #[arg(long = "no-input")]
    pub no_input: bool,
    /// Embed HTML outputs and Markdown's HTML in the page as they are, scripts included (default: sanitised)
    #[arg(long = "trust-html")]
    pub trust_html: bool,
    /// Load MathJax from URL to typeset math (default: nothing is loaded from the network)
    #[arg(long = "mathjax-url", value_name = "URL")]
    pub mathjax_url: Option<String>,
}

impl HtmlArgs {
    pub fn options(&self, fallback_title: Option<String>) -> nbexec_report::Options {
        nbexec_report::Options {
            no_input: self.no_input,
            trust_html: self.trust_html,
            mathjax_url: self.mathjax_url.clone(),
            fallback_title,
            redact: Vec::new(),
        }
    }
}

fn file_title(path: &Path) -> Option<String> {
    if path.as_os_str() == "-" {
        return None;
    }
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

pub fn main(args: RenderArgs) -> i32 {
    let nb = match read_streaming(&args.input) {
        Ok(nb) => nb,
        Err(e) => {
            error_line(e);
            return EXIT_USAGE;
        }
    };
    let opts = args.html.options(file_title(&args.input));
    let output = match args.output {
        Some(p) => p,
        None if !std::io::stdout().is_terminal() || args.input.as_os_str() == "-" => {
            PathBuf::from("-")
        }
        None => args.input.with_extension("html"),
    };
    let result = if output.as_os_str() == "-" {
        let stdout = std::io::stdout().lock();
        nbexec_report::render(&nb, &opts, stdout)
            .map_err(|e| format!("cannot write the report to stdout: {e}"))
    } else {
        write_report_file(&nb, &opts, &output)
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            error_line(e);
            EXIT_USAGE
        }
    }
}

/// Reads a notebook file without holding its bytes and its model at once (the peak
/// stays near the notebook's size). Anything the streaming parse rejects is read again
/// by the ordinary reader, for its exact error message or its extensions (NaN).
fn read_streaming(path: &Path) -> Result<Notebook, nbexec::Error> {
    if path.as_os_str() != "-"
        && let Ok(file) = std::fs::File::open(path)
    {
        let reader = std::io::BufReader::with_capacity(1 << 16, file);
        if let Ok(value) = serde_json::from_reader::<_, Value>(reader)
            && let Ok(outcome) = nbexec_format::from_value(value)
        {
            for w in &outcome.warnings {
                super::warning_line(format!("{}: {w}", path.display()));
            }
            return Ok(outcome.notebook);
        }
    }
    nbexec::read_notebook_unchecked(path)
}

/// Writes the report to `path` through a temporary file in the same directory and a
/// rename, so a failed write never leaves a truncated page behind.
pub fn write_report_file(
    nb: &Notebook,
    opts: &nbexec_report::Options,
    path: &Path,
) -> Result<(), String> {
    if nbexec::is_url(path) {
        // A report to an object store: rendered in memory, uploaded whole.
        let mut page = Vec::new();
        nbexec_report::render(nb, opts, &mut page)
            .map_err(|e| format!("cannot render the report: {e}"))?;
        return nbexec::write_bytes(path, &page).map_err(|e| e.to_string());
    }
    let path = &nbexec::local_path(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        nbexec_report::render(nb, opts, &mut file)?;
        file.flush()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}

/// Passes every string of the notebook through `redact` (secret values out).
pub fn redact_notebook(nb: &mut Notebook, redact: &dyn Fn(&str) -> String) {
    fn walk(v: &mut Value, redact: &dyn Fn(&str) -> String) {
        match v {
            Value::String(s) => {
                let r = redact(s);
                if r != *s {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, redact)),
            Value::Object(map) => map.values_mut().for_each(|i| walk(i, redact)),
            _ => {}
        }
    }
    for cell in nb.cells_mut() {
        for v in cell.as_map_mut().values_mut() {
            walk(v, redact);
        }
    }
    for v in nb.metadata_mut().values_mut() {
        walk(v, redact);
    }
}
