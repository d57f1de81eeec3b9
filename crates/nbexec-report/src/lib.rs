//! Self-contained HTML reports of executed notebooks.
//!
//! [`render`] streams one HTML page for a [`Notebook`] to any [`Write`]: inline CSS, the
//! images as data URIs, nothing loaded from the network unless a MathJax URL is given.
//! The markup reuses JupyterLab's `jp-*` classes and nbconvert's MIME priority so the
//! page can be compared with `jupyter nbconvert --to html`. HTML from outputs and
//! Markdown is sanitised unless the caller trusts it. This crate knows notebooks, not
//! kernels.

mod ansi;
mod escape;
mod markdown;
mod sanitize;

use std::collections::HashSet;
use std::io::{self, Write};

use nbexec_format::{Cell, Notebook};
use serde_json::{Map, Value};

pub use ansi::{ansi_to_html, apply_terminal_controls};
pub use escape::escaped;
pub use sanitize::clean as sanitize_html;

/// How to render.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Hide code cells' input (outputs stay).
    pub no_input: bool,
    /// Embed `text/html` outputs and Markdown's raw HTML as they are (nbconvert's
    /// default), instead of sanitising them.
    pub trust_html: bool,
    /// Load MathJax from this URL (nothing is loaded from the network otherwise).
    pub mathjax_url: Option<String>,
    /// The page title when the notebook has no `# heading` (usually the file name).
    pub fallback_title: Option<String>,
    /// Values to replace by `[REDACTED]` wherever the header shows parameters.
    pub redact: Vec<String>,
}

/// nbconvert's output MIME priority (first match wins).
pub const MIME_PRIORITY: [&str; 10] = [
    "application/vnd.jupyter.widget-view+json",
    "application/javascript",
    "text/html",
    "text/markdown",
    "image/svg+xml",
    "text/vnd.mermaid",
    "text/latex",
    "image/png",
    "image/jpeg",
    "text/plain",
];

const CSS: &str = include_str!("report.css");

/// Renders `nb` as one HTML page into `out`. The page is streamed: image payloads go
/// straight from the notebook to the writer.
pub fn render<W: Write>(nb: &Notebook, opts: &Options, out: W) -> io::Result<()> {
    let mut w = Page {
        out: io::BufWriter::with_capacity(1 << 16, out),
        opts,
        ids: HashSet::new(),
        buf: String::new(),
        widget_models: widget_models(nb),
    };
    w.page(nb)?;
    w.out.flush()
}

/// Renders into a `String` (small notebooks and tests).
pub fn render_to_string(nb: &Notebook, opts: &Options) -> String {
    let mut v = Vec::new();
    render(nb, opts, &mut v).expect("writing to a Vec cannot fail");
    String::from_utf8(v).expect("the report is UTF-8")
}

/// The title: the first level-1 Markdown heading, else `fallback`.
pub fn title(nb: &Notebook, fallback: Option<&str>) -> String {
    for cell in nb.cells() {
        if cell.cell_type() != "markdown" {
            continue;
        }
        for line in cell.source().lines() {
            if let Some(t) = line.trim_start().strip_prefix("# ") {
                let t = t.trim().trim_end_matches('#').trim();
                if !t.is_empty() {
                    return t.to_owned();
                }
            }
        }
    }
    fallback.unwrap_or("Notebook").to_owned()
}

/// Where a cell's anchor points, as nbconvert names it (`cell-id=ID`).
fn cell_anchor(cell: &Cell, index: usize) -> String {
    match cell.id() {
        Some(id) => format!("cell-id={id}"),
        None => format!("cell-{index}"),
    }
}

fn cell_failed(cell: &Cell) -> bool {
    let by_meta = cell
        .metadata()
        .get("papermill")
        .and_then(|p| p.get("exception"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    by_meta
        || (cell.is_code()
            && cell
                .outputs()
                .iter()
                .any(|o| o.get("output_type").and_then(Value::as_str) == Some("error")))
}

/// Joins a string or a list of strings (nbformat's multi-line form).
fn text_of(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
        Value::Array(parts) => {
            std::borrow::Cow::Owned(parts.iter().filter_map(Value::as_str).collect())
        }
        Value::Null => std::borrow::Cow::Borrowed(""),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

struct Page<'a, W: Write> {
    out: io::BufWriter<W>,
    opts: &'a Options,
    ids: HashSet<String>,
    buf: String,
    widget_models: HashSet<String>,
}

impl<W: Write> Page<'_, W> {
    fn flush_buf(&mut self) -> io::Result<()> {
        self.out.write_all(self.buf.as_bytes())?;
        self.buf.clear();
        Ok(())
    }

    fn page(&mut self, nb: &Notebook) -> io::Result<()> {
        let title = title(nb, self.opts.fallback_title.as_deref());
        let csp = match &self.opts.mathjax_url {
            _ if self.opts.trust_html => None,
            Some(url) => {
                let origin = origin_of(url);
                Some(format!(
                    "default-src 'none'; img-src data:; style-src 'unsafe-inline' {origin}; script-src {origin}; font-src {origin} data:; connect-src {origin}"
                ))
            }
            None => Some("default-src 'none'; img-src data:; style-src 'unsafe-inline'".to_owned()),
        };
        let b = &mut self.buf;
        b.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        if let Some(csp) = csp {
            b.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"");
            escape::push_escaped(b, &csp);
            b.push_str("\">\n");
        }
        b.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        b.push_str("<meta name=\"generator\" content=\"nbexec ");
        b.push_str(env!("CARGO_PKG_VERSION"));
        b.push_str("\">\n<title>");
        escape::push_escaped(b, &title);
        b.push_str("</title>\n<style>\n");
        b.push_str(CSS);
        b.push_str("</style>\n");
        if let Some(url) = &self.opts.mathjax_url {
            b.push_str("<script>window.MathJax={tex:{inlineMath:[['$','$'],['\\\\(','\\\\)']],processEscapes:true}};</script>\n");
            b.push_str("<script async src=\"");
            escape::push_escaped(b, url);
            b.push_str("\"></script>\n");
        }
        b.push_str("</head>\n<body class=\"jp-Notebook\" data-jp-theme-light=\"true\">\n<main>\n");
        self.header(nb, &title);
        b_flush(self)?;
        for (i, cell) in nb.cells().iter().enumerate() {
            self.cell(cell, i)?;
        }
        self.buf.push_str("</main>\n</body>\n</html>\n");
        self.flush_buf()
    }

    fn header(&mut self, nb: &Notebook, title: &str) {
        let md = nb.metadata();
        let pm = md.get("papermill").and_then(Value::as_object);
        let ours = md.get("nbexec").and_then(Value::as_object);
        fn get<'v>(m: Option<&'v Map<String, Value>>, k: &str) -> Option<&'v Value> {
            m.and_then(|m| m.get(k)).filter(|v| !v.is_null())
        }
        let failed: Vec<usize> = nb
            .cells()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_code() && cell_failed(c))
            .map(|(i, _)| i)
            .collect();
        let status = match get(ours, "status").and_then(Value::as_str) {
            Some(s) => s.to_owned(),
            None if get(pm, "exception").and_then(Value::as_bool) == Some(true)
                || !failed.is_empty() =>
            {
                "failed".into()
            }
            None if get(pm, "end_time").is_some() => "completed".into(),
            None => "unknown".into(),
        };
        let status_class = match status.as_str() {
            "completed" | "succeeded" | "ok" => "ok",
            "failed" | "timed out" | "cancelled" | "killed" => "bad",
            _ => "other",
        };
        let b = &mut self.buf;
        b.push_str("<header class=\"nbx-header\">\n<h1 class=\"nbx-title\">");
        escape::push_escaped(b, title);
        b.push_str("</h1>\n<dl class=\"nbx-run\">\n");
        let row = |b: &mut String, k: &str, v: &str, class: Option<&str>| {
            b.push_str("<dt>");
            b.push_str(k);
            b.push_str("</dt><dd");
            if let Some(c) = class {
                b.push_str(" class=\"");
                b.push_str(c);
                b.push('"');
            }
            b.push('>');
            escape::push_escaped(b, v);
            b.push_str("</dd>\n");
        };
        row(
            b,
            "Status",
            &status,
            Some(&format!("nbx-status nbx-status-{status_class}")),
        );
        if let Some(v) = get(pm, "start_time").and_then(Value::as_str) {
            row(b, "Started", v, None);
        }
        if let Some(v) = get(pm, "duration") {
            let text = v
                .as_f64()
                .map_or_else(|| v.to_string(), |d| format!("{d:.3} s"));
            row(b, "Duration", &text, None);
        }
        let kernel = get(ours, "kernel")
            .and_then(Value::as_str)
            .or(nb.kernelspec_name());
        if let Some(k) = kernel {
            row(b, "Kernel", k, None);
        }
        let ran_with = get(ours, "version").and_then(Value::as_str);
        let version = match ran_with {
            Some(v) if v != env!("CARGO_PKG_VERSION") => {
                format!("{} (run with {v})", env!("CARGO_PKG_VERSION"))
            }
            _ => env!("CARGO_PKG_VERSION").to_owned(),
        };
        row(b, "nbexec", &version, None);
        b.push_str("</dl>\n");
        if let Some(params) = get(pm, "parameters")
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty())
        {
            b.push_str("<table class=\"nbx-params\"><caption>Parameters</caption>\n");
            for (k, v) in params {
                let mut text = match v {
                    Value::String(s) => format!("{s:?}"),
                    other => other.to_string(),
                };
                let mut key = k.clone();
                for secret in self.opts.redact.iter().filter(|s| !s.is_empty()) {
                    text = text.replace(secret.as_str(), "[REDACTED]");
                    key = key.replace(secret.as_str(), "[REDACTED]");
                }
                b.push_str("<tr><th>");
                escape::push_escaped(b, &key);
                b.push_str("</th><td><code>");
                escape::push_escaped(b, &text);
                b.push_str("</code></td></tr>\n");
            }
            b.push_str("</table>\n");
        }
        if !failed.is_empty() {
            b.push_str("<p class=\"nbx-failed\">Failed: ");
            for (n, &i) in failed.iter().enumerate() {
                let cell = &nb.cells()[i];
                if n > 0 {
                    b.push_str(", ");
                }
                b.push_str("<a href=\"#");
                escape::push_escaped(b, &cell_anchor(cell, i));
                b.push_str("\">");
                match cell.execution_count() {
                    Some(c) => b.push_str(&format!("In [{c}]")),
                    None => b.push_str(&format!("cell {}", i + 1)),
                }
                b.push_str("</a>");
            }
            b.push_str("</p>\n");
        }
        b.push_str("</header>\n");
    }

    fn cell(&mut self, cell: &Cell, index: usize) -> io::Result<()> {
        if cell.has_tag("remove-cell") {
            return Ok(());
        }
        let anchor = cell_anchor(cell, index);
        let tags: Vec<&str> = cell.tags();
        let tag_classes: String = tags
            .iter()
            .map(|t| format!(" celltag_{}", escaped(t).replace(' ', "_")))
            .collect();
        match cell.cell_type() {
            "code" => self.code_cell(cell, &anchor, &tag_classes)?,
            "markdown" => {
                let html = markdown::to_html(
                    cell.source(),
                    cell.as_map().get("attachments").and_then(Value::as_object),
                    &mut self.ids,
                );
                let html = if self.opts.trust_html {
                    html
                } else {
                    sanitize::clean(&html)
                };
                let b = &mut self.buf;
                b.push_str("<div id=\"");
                escape::push_escaped(b, &anchor);
                b.push_str("\" class=\"jp-Cell jp-MarkdownCell jp-Notebook-cell");
                b.push_str(&tag_classes);
                b.push_str("\">\n<div class=\"jp-RenderedHTMLCommon jp-RenderedMarkdown jp-MarkdownOutput\" data-mime-type=\"text/markdown\">\n");
                b.push_str(&html);
                b.push_str("</div>\n</div>\n");
            }
            _ => {
                let format = cell
                    .metadata()
                    .get("format")
                    .or_else(|| cell.metadata().get("raw_mimetype"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                // As nbconvert: a raw cell shows only when its format is HTML.
                if matches!(format, "text/html" | "html") {
                    let src = cell.source();
                    let b = &mut self.buf;
                    b.push_str("<div class=\"nbx-raw\">\n");
                    if self.opts.trust_html {
                        b.push_str(src);
                    } else {
                        b.push_str(&sanitize::clean(src));
                    }
                    b.push_str("</div>\n");
                }
            }
        }
        self.flush_buf()
    }

    fn code_cell(&mut self, cell: &Cell, anchor: &str, tag_classes: &str) -> io::Result<()> {
        let hide_input = self.opts.no_input || cell.has_tag("remove-input");
        let hide_output = cell.has_tag("remove-output");
        let outputs = if hide_output { &[][..] } else { cell.outputs() };
        let count = cell
            .execution_count()
            .map_or_else(|| " ".to_owned(), |c| c.to_string());
        let b = &mut self.buf;
        b.push_str("<div id=\"");
        escape::push_escaped(b, anchor);
        b.push_str("\" class=\"jp-Cell jp-CodeCell jp-Notebook-cell");
        if outputs.is_empty() {
            b.push_str(" jp-mod-noOutputs");
        }
        if hide_input {
            b.push_str(" jp-mod-noInput");
        }
        if cell_failed(cell) {
            b.push_str(" nbx-failed-cell");
        }
        b.push_str(tag_classes);
        b.push_str("\">\n");
        if !hide_input {
            b.push_str("<div class=\"jp-Cell-inputWrapper\"><div class=\"jp-InputArea jp-Cell-inputArea\"><div class=\"jp-InputPrompt jp-InputArea-prompt\">In&nbsp;[");
            b.push_str(&count);
            b.push_str("]:</div><div class=\"jp-CodeMirrorEditor jp-Editor jp-InputArea-editor\"><div class=\"highlight\"><pre>");
            escape::push_escaped(b, cell.source());
            b.push_str("</pre></div></div></div></div>\n");
        }
        if !outputs.is_empty() {
            b.push_str("<div class=\"jp-Cell-outputWrapper\"><div class=\"jp-OutputArea jp-Cell-outputArea\">\n");
            for output in outputs {
                self.output(output)?;
            }
            self.buf.push_str("</div></div>\n");
        }
        self.buf.push_str("</div>\n");
        Ok(())
    }

    fn output(&mut self, output: &Value) -> io::Result<()> {
        let kind = output
            .get("output_type")
            .and_then(Value::as_str)
            .unwrap_or("");
        match kind {
            "stream" => {
                let name = output
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("stdout");
                let mime = if name == "stderr" {
                    "application/vnd.jupyter.stderr"
                } else {
                    "text/plain"
                };
                let text = output.get("text").map(text_of).unwrap_or_default();
                let text = apply_terminal_controls(&text);
                let b = &mut self.buf;
                b.push_str("<div class=\"jp-OutputArea-child\"><div class=\"jp-OutputPrompt jp-OutputArea-prompt\"></div><div class=\"jp-RenderedText jp-OutputArea-output");
                if name == "stderr" {
                    b.push_str(" nbx-stderr");
                }
                b.push_str("\" data-mime-type=\"");
                b.push_str(mime);
                b.push_str("\"><pre>");
                ansi_to_html(&text, b);
                b.push_str("</pre></div></div>\n");
            }
            "error" => {
                let ename = output
                    .get("ename")
                    .and_then(Value::as_str)
                    .unwrap_or("Error");
                let evalue = output.get("evalue").and_then(Value::as_str).unwrap_or("");
                let b = &mut self.buf;
                b.push_str("<div class=\"jp-OutputArea-child nbx-error\"><div class=\"jp-OutputPrompt jp-OutputArea-prompt\"></div><div class=\"nbx-error-summary\"><strong>");
                escape::push_escaped(b, ename);
                b.push_str("</strong>: ");
                escape::push_escaped(b, evalue);
                b.push_str("</div><div class=\"jp-RenderedText jp-OutputArea-output\" data-mime-type=\"application/vnd.jupyter.stderr\"><pre>");
                let lines = output.get("traceback").and_then(Value::as_array);
                match lines {
                    Some(lines) if !lines.is_empty() => {
                        for line in lines {
                            b.push('\n');
                            ansi_to_html(&text_of(line), b);
                        }
                    }
                    _ => {
                        escape::push_escaped(b, &format!("{ename}: {evalue}"));
                    }
                }
                b.push_str("</pre></div></div>\n");
            }
            "execute_result" | "display_data" => {
                let empty = Map::new();
                let data = output
                    .get("data")
                    .and_then(Value::as_object)
                    .unwrap_or(&empty);
                let meta = output
                    .get("metadata")
                    .and_then(Value::as_object)
                    .unwrap_or(&empty);
                let Some(mime) = choose_mime(data, &self.widget_models) else {
                    return Ok(());
                };
                let result = kind == "execute_result";
                let b = &mut self.buf;
                b.push_str("<div class=\"jp-OutputArea-child");
                if result {
                    b.push_str(" jp-OutputArea-executeResult");
                }
                b.push_str("\"><div class=\"jp-OutputPrompt jp-OutputArea-prompt\">");
                if result && let Some(c) = output.get("execution_count").and_then(Value::as_u64) {
                    b.push_str(&format!("Out[{c}]:"));
                }
                b.push_str("</div>");
                self.data(mime, &data[mime], meta)?;
                self.buf.push_str("</div>\n");
            }
            _ => {}
        }
        if self.buf.len() > 1 << 16 {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn data(&mut self, mime: &str, value: &Value, meta: &Map<String, Value>) -> io::Result<()> {
        let b = &mut self.buf;
        match mime {
            "application/vnd.jupyter.widget-view+json" | "application/javascript" => {
                b.push_str("<div class=\"nbx-interactive jp-OutputArea-output\" data-mime-type=\"");
                b.push_str(mime);
                b.push_str("\"><em>Interactive output not shown (");
                b.push_str(if mime == "application/javascript" {
                    "JavaScript"
                } else {
                    "widget"
                });
                b.push_str(").</em></div>");
            }
            "text/html" => {
                b.push_str("<div class=\"jp-RenderedHTMLCommon jp-RenderedHTML jp-OutputArea-output\" data-mime-type=\"text/html\">\n");
                let html = text_of(value);
                if self.opts.trust_html {
                    b.push_str(&html);
                } else {
                    b.push_str(&sanitize::clean(&html));
                }
                b.push_str("\n</div>");
            }
            "text/markdown" => {
                let html = markdown::to_html(&text_of(value), None, &mut self.ids);
                let b = &mut self.buf;
                b.push_str("<div class=\"jp-RenderedHTMLCommon jp-RenderedMarkdown jp-OutputArea-output\" data-mime-type=\"text/markdown\">\n");
                if self.opts.trust_html {
                    b.push_str(&html);
                } else {
                    b.push_str(&sanitize::clean(&html));
                }
                b.push_str("</div>");
            }
            "image/svg+xml" => {
                b.push_str("<div class=\"jp-RenderedSVG jp-OutputArea-output\" data-mime-type=\"image/svg+xml\"><img src=\"data:image/svg+xml;base64,");
                self.flush_buf()?;
                {
                    let text = text_of(value);
                    let mut enc = base64::write::EncoderWriter::new(
                        &mut self.out,
                        &base64::engine::general_purpose::STANDARD,
                    );
                    enc.write_all(text.as_bytes())?;
                    enc.finish()?;
                }
                self.buf.push('"');
                self.image_size(mime, meta);
                self.buf.push_str("></div>");
            }
            "text/vnd.mermaid" => {
                b.push_str("<div class=\"jp-Mermaid jp-OutputArea-output\" data-mime-type=\"text/vnd.mermaid\"><pre class=\"mermaid\">");
                escape::push_escaped(b, text_of(value).trim());
                b.push_str("</pre></div>");
            }
            "text/latex" => {
                b.push_str("<div class=\"jp-RenderedLatex jp-OutputArea-output\" data-mime-type=\"text/latex\">\n");
                escape::push_escaped(b, &text_of(value));
                b.push_str("\n</div>");
            }
            "image/png" | "image/jpeg" => {
                b.push_str(
                    "<div class=\"jp-RenderedImage jp-OutputArea-output\" data-mime-type=\"",
                );
                b.push_str(mime);
                b.push_str("\"><img src=\"data:");
                b.push_str(mime);
                b.push_str(";base64,");
                self.flush_buf()?;
                // Base64 text goes straight from the notebook to the page; only line
                // breaks are dropped (and anything that could end the attribute).
                write_base64_runs(&mut self.out, text_of(value).as_bytes())?;
                self.buf.push('"');
                self.image_size(mime, meta);
                self.buf.push_str("></div>");
            }
            _ if is_json(mime) => {
                let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
                b.push_str("<div class=\"jp-RenderedJSON jp-RenderedText jp-OutputArea-output\" data-mime-type=\"");
                escape::push_escaped(b, mime);
                b.push_str("\"><pre>");
                escape::push_escaped(b, &pretty);
                b.push_str("</pre></div>");
            }
            _ => {
                b.push_str("<div class=\"jp-RenderedText jp-OutputArea-output\" data-mime-type=\"text/plain\"><pre>");
                ansi_to_html(&text_of(value), b);
                b.push_str("</pre></div>");
            }
        }
        Ok(())
    }

    fn image_size(&mut self, mime: &str, meta: &Map<String, Value>) {
        let m = meta.get(mime).and_then(Value::as_object);
        for key in ["width", "height"] {
            let v = m.and_then(|m| m.get(key)).or_else(|| meta.get(key));
            if let Some(v) = v.filter(|v| v.is_number() || v.is_string()) {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                self.buf.push(' ');
                self.buf.push_str(key);
                self.buf.push_str("=\"");
                escape::push_escaped(&mut self.buf, &text);
                self.buf.push('"');
            }
        }
        let unconfined = m.and_then(|m| m.get("unconfined")).and_then(Value::as_bool) == Some(true);
        if unconfined {
            self.buf.push_str(" class=\"unconfined\"");
        }
    }
}

/// The model ids of the widget state saved in the notebook's metadata.
fn widget_models(nb: &Notebook) -> HashSet<String> {
    nb.metadata()
        .get("widgets")
        .and_then(|w| w.get("application/vnd.jupyter.widget-state+json"))
        .and_then(|w| w.get("state"))
        .and_then(Value::as_object)
        .map(|state| state.keys().cloned().collect())
        .unwrap_or_default()
}

/// Writes the runs of base64 characters in `bytes`, skipping everything else (line
/// breaks, and anything that could end an attribute).
fn write_base64_runs(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    const fn table() -> [bool; 256] {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let b = i as u8;
            t[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
            i += 1;
        }
        t
    }
    static BASE64: [bool; 256] = table();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !BASE64[b as usize] {
            if start < i {
                out.write_all(&bytes[start..i])?;
            }
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.write_all(&bytes[start..])?;
    }
    Ok(())
}

fn b_flush<W: Write>(p: &mut Page<'_, W>) -> io::Result<()> {
    p.flush_buf()
}

fn is_json(mime: &str) -> bool {
    mime == "application/json" || mime.ends_with("+json")
}

/// The MIME type nbconvert would show: the first of [`MIME_PRIORITY`] present, else a
/// JSON type, else `None` (nothing nbconvert can display). A widget view counts only
/// when the notebook saved that widget's state (`widget_models`), as in nbconvert.
pub fn choose_mime<'d>(
    data: &'d Map<String, Value>,
    widget_models: &HashSet<String>,
) -> Option<&'d str> {
    const WIDGET: &str = "application/vnd.jupyter.widget-view+json";
    MIME_PRIORITY
        .iter()
        .find(|m| {
            data.contains_key(**m)
                && (**m != WIDGET
                    || data[WIDGET]
                        .get("model_id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| widget_models.contains(id)))
        })
        .and_then(|m| data.get_key_value(*m).map(|(k, _)| k.as_str()))
        .or_else(|| data.keys().map(String::as_str).find(|m| is_json(m)))
}

/// `scheme://host[:port]` of a URL, for the page's content security policy.
fn origin_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            format!("{scheme}://{host}")
        }
        None => "'self'".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn widget_views_count_only_with_saved_state() {
        let data = json!({
            "application/vnd.jupyter.widget-view+json": {"model_id": "m1"},
            "text/plain": "IntSlider()"
        });
        let data = data.as_object().unwrap();
        assert_eq!(choose_mime(data, &HashSet::new()), Some("text/plain"));
        let saved: HashSet<String> = ["m1".to_owned()].into();
        assert_eq!(
            choose_mime(data, &saved),
            Some("application/vnd.jupyter.widget-view+json")
        );
        let only_json = json!({"application/geo+json": {"type": "Point"}});
        assert_eq!(
            choose_mime(only_json.as_object().unwrap(), &saved),
            Some("application/geo+json")
        );
    }

    #[test]
    fn a_saved_widget_becomes_a_note_and_geojson_is_pretty() {
        let nb = nbexec_format::from_value(json!({
            "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {"m1": {}}}}},
            "cells": [{"cell_type": "code", "id": "a", "execution_count": 1, "metadata": {}, "source": "w",
                "outputs": [
                    {"output_type": "display_data", "metadata": {},
                     "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "m1"}, "text/plain": "IntSlider()"}},
                    {"output_type": "display_data", "metadata": {},
                     "data": {"application/geo+json": {"type": "Point", "coordinates": [1, 2]}}}
                ]}]
        }))
        .unwrap()
        .notebook;
        let page = render_to_string(&nb, &Options::default());
        assert!(
            page.contains("Interactive output not shown (widget)"),
            "{page}"
        );
        assert!(!page.contains("IntSlider()"));
        assert!(page.contains("data-mime-type=\"application/geo+json\"><pre>{\n  &quot;type&quot;: &quot;Point&quot;"), "{page}");
    }
}

#[cfg(test)]
mod base64_tests {
    #[test]
    fn only_base64_characters_are_copied() {
        let mut out = Vec::new();
        super::write_base64_runs(&mut out, b"iVBO\nRw0K\"><script>==\n").unwrap();
        assert_eq!(out, b"iVBORw0Kscript==");
    }
}
