//! HTML reports (`nbexec render`, `nbexec run --report`): structure against nbconvert,
//! the sanitiser corpus, the run header, and the page in a real headless Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::chromium::load;
use common::*;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    root().join("fixtures/report").join(name)
}

/// `nbexec render NB -o OUT` with `extra` flags; returns the page.
fn render(nb: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["render", nb.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let done = run(&args);
    assert_eq!(
        done.status.code(),
        Some(0),
        "render failed: {}",
        stderr(&done)
    );
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn fixtures_match_nbconvert_structurally() {
    // Same cells, outputs, MIME types and text as `jupyter nbconvert --to html`.
    // The script takes any directory of notebooks; here it runs over the fixtures.
    let out = Command::new(venv().join("bin/python"))
        .arg(root().join("scripts/report-compare.py"))
        .args(["--nbexec", env!("CARGO_BIN_EXE_nbexec")])
        .arg(root().join("fixtures/report"))
        .env("VIRTUAL_ENV", venv())
        .env(
            "PATH",
            format!(
                "{}/bin:{}",
                venv().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("the comparison runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "differences from nbconvert:\n{text}\n{}",
        stderr(&out)
    );
    assert!(text.contains("6/6 notebooks match nbconvert"), "{text}");
    // The deliberate differences are the ones expected, nothing else.
    assert!(
        text.contains("carriage returns/backspaces applied"),
        "{text}"
    );
    assert!(
        text.contains("application/javascript): shown as a note"),
        "{text}"
    );
}

#[test]
fn outputs_follow_nbconvert_mime_priority_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let page = render(&fixture("rich.ipynb"), &dir.path().join("rich.html"), &[]);
    // The DataFrame stays a table with its classes; its <style> block does not survive.
    assert!(
        page.contains("<table border=\"1\" class=\"dataframe\">"),
        "{page}"
    );
    assert!(page.contains("<tr style=\"text-align: right;\">"));
    assert!(!page.contains("<style scoped>"));
    // PNG with its width/height metadata, JPEG, SVG as a data URI <img>, never inline.
    assert!(page.contains("<img src=\"data:image/png;base64,iVBOR"));
    assert!(page.contains(" width=\"256\" height=\"160\""));
    assert!(page.contains("<img src=\"data:image/jpeg;base64,/9j/"));
    assert!(page.contains("<img src=\"data:image/svg+xml;base64,PHN2Zy"));
    assert!(!page.contains("<svg"));
    // LaTeX as text, Markdown rendered, JSON pretty-printed, JavaScript as a note.
    assert!(page.contains("data-mime-type=\"text/latex\">\n$\\int_0^1"));
    assert!(page.contains("Some <strong>markdown</strong> output"));
    // JSON with a text/plain fallback: text/plain, as nbconvert chooses.
    assert!(page.contains("&lt;IPython.core.display.JSON object&gt;"));
    assert!(page.contains("Interactive output not shown (JavaScript)"));
    assert!(!page.contains("<script"));
    // A widget view without saved widget state falls back to text/plain, as nbconvert.
    assert!(page.contains("IntSlider(value=3)"));
    // Display updates: the stored (updated) value.
    assert!(
        page.contains("<pre>&#39;updated version&#39;</pre>"),
        "{page}"
    );
    assert!(!page.contains("<pre>&#39;first version&#39;</pre>"));
    // Tags: remove-input keeps the output, remove-output the input, remove-cell nothing.
    assert!(
        page.contains("this input is hidden") && !page.contains("print(&#39;this input is hidden")
    );
    assert!(page.contains("print(&#39;this output is hidden&#39;)"));
    assert_eq!(page.matches("this output is hidden").count(), 1);
    assert!(!page.contains("this whole cell is hidden"));
    // A raw cell without an HTML format is not shown.
    assert!(!page.contains("raw text, not shown"));
}

#[test]
fn streams_get_ansi_classes_and_terminal_controls() {
    let dir = tempfile::tempdir().unwrap();
    let page = render(&fixture("streams.ipynb"), &dir.path().join("s.html"), &[]);
    assert!(
        page.contains("<span class=\"ansi-red-fg\">red</span>"),
        "{page}"
    );
    assert!(page.contains("<span class=\"ansi-green-intense-fg ansi-bold\">bold green</span>"));
    assert!(page.contains("<span class=\"ansi-blue-bg\">blue background</span>"));
    assert!(page.contains("<span style=\"color: rgb(255,135,0)\">256-colour orange</span>"));
    assert!(page.contains("&lt;b&gt;not bold&lt;/b&gt; &amp; escaped"));
    assert!(
        page.contains("data-mime-type=\"application/vnd.jupyter.stderr\"><pre>a warning on stderr")
    );
    assert!(page.contains("Out[3]:"));
    assert!(!page.contains('\x1b'));

    let page = render(
        &fixture("raw-streams.ipynb"),
        &dir.path().join("r.html"),
        &[],
    );
    assert!(
        page.contains("<pre>downloading 100%\ndone\n</pre>"),
        "{page}"
    );
    assert!(!page.contains("downloading  50%"));
    assert!(page.contains("<pre>text fixed\n</pre>"));
    assert!(page.contains("<span class=\"ansi-yellow-fg\">warning:</span> careful"));
}

#[test]
fn markdown_tables_math_attachments_and_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let page = render(&fixture("markdown.ipynb"), &dir.path().join("m.html"), &[]);
    assert!(
        page.contains("<table>") && page.contains("<td>alpha</td>"),
        "{page}"
    );
    assert!(page.contains("<del>struck</del>"));
    assert!(page.contains("type=\"checkbox\""));
    assert!(page.contains(
        "<h2 id=\"Lists-and-text\">Lists and text<a class=\"anchor-link\" href=\"#Lists-and-text\""
    ));
    // Math is kept as text for MathJax, untouched by emphasis rules.
    assert!(page.contains("$a_1 + b_1 = c^2$"));
    assert!(page.contains("$$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$"));
    // attachment: resolved to a data URI.
    assert!(page.contains("src=\"data:image/png;base64,iVBOR"));
    assert!(!page.contains("attachment:"));
    assert!(page.contains("<div class=\"note\">Raw <em>HTML</em> in Markdown.</div>"));
    // The title is the first `# heading`; nothing is loaded from the network.
    assert!(page.contains("<title>Markdown</title>"));
    assert!(!page.contains("<script"));
    assert!(page.contains("Content-Security-Policy"));
}

/// Everything in a page that could run or fetch, lower-cased.
fn executable_bits(page: &str) -> Vec<String> {
    let lower = page.to_ascii_lowercase();
    let mut found = Vec::new();
    for needle in [
        "<script",
        "=\"javascript:",
        "='javascript:",
        "=javascript:",
        "<iframe",
        "<object",
        "<embed",
        "<form",
        "expression(",
        "data:text/html",
        "http-equiv=\"refresh\"",
        "<svg",
        "<math",
        "url(",
        "pwned",
    ] {
        if lower.contains(needle) {
            found.push(needle.to_owned());
        }
    }
    // Event handler attributes: ` on…=` inside a tag.
    let mut rest = lower.as_str();
    while let Some(p) = rest.find(" on") {
        let after = &rest[p + 3..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        if !name.is_empty() && after[name.len()..].trim_start().starts_with('=') {
            found.push(format!("on{name}="));
        }
        rest = &rest[p + 3..];
    }
    // Only the report's own <style> block.
    if lower.matches("<style").count() != 1 {
        found.push("<style".into());
    }
    found
}

#[test]
fn sanitiser_corpus_leaves_nothing_executable() {
    let dir = tempfile::tempdir().unwrap();
    let page = render(&fixture("hostile.ipynb"), &dir.path().join("h.html"), &[]);
    assert_eq!(executable_bits(&page), Vec::<String>::new(), "{page}");
    // The harmless text around the hostile bits is still there.
    for text in [
        "after script",
        "a javascript: link",
        "after iframe",
        "css expression",
        "md js link",
        "after style",
    ] {
        assert!(page.contains(text), "{text} lost:\n{page}");
    }
    // --trust-html embeds the outputs as they are (nbconvert's default), and drops the
    // page's script-blocking policy: the same corpus is then live.
    let trusted = render(
        &fixture("hostile.ipynb"),
        &dir.path().join("t.html"),
        &["--trust-html"],
    );
    let bits = executable_bits(&trusted);
    assert!(
        bits.contains(&"<script".to_owned()) && bits.contains(&"onerror=".to_owned()),
        "{bits:?}"
    );
    assert!(!trusted.contains("Content-Security-Policy"));
}

#[test]
fn render_streams_to_stdout_and_rejects_bad_input() {
    // Piped stdout is the default output.
    let done = run(&["render", fixture("streams.ipynb").to_str().unwrap()]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let page = stdout(&done);
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.ipynb");
    let done = run(&[
        "render",
        missing.to_str().unwrap(),
        "-o",
        dir.path().join("x.html").to_str().unwrap(),
    ]);
    assert_eq!(done.status.code(), Some(2));
    assert!(stderr(&done).starts_with("error: "), "{}", stderr(&done));
    assert!(!dir.path().join("x.html").exists());

    let bad = dir.path().join("bad.ipynb");
    std::fs::write(&bad, "{not json").unwrap();
    let done = run(&[
        "render",
        bad.to_str().unwrap(),
        "-o",
        dir.path().join("y.html").to_str().unwrap(),
    ]);
    assert_eq!(done.status.code(), Some(2));
    assert!(stderr(&done).starts_with("error: "), "{}", stderr(&done));

    // An output directory that does not exist: an error, no stray temporary file.
    let out = dir.path().join("no/such/dir/r.html");
    let done = run(&[
        "render",
        fixture("streams.ipynb").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(done.status.code(), Some(2));
    assert!(
        stderr(&done).starts_with("error: cannot write"),
        "{}",
        stderr(&done)
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("bad.ipynb")]);
}

#[test]
fn run_report_is_written_on_failure_with_header_and_redacted_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(vec![
        markdown("# Nightly check"),
        code("token = 'none'\nlimit = 1", &["parameters"]),
        code("print('using', token)", &[]),
        code("raise RuntimeError(f'limit {limit} exceeded')", &[]),
        code("print('not reached')", &[]),
    ]);
    let input = write_nb(dir.path(), "nightly.ipynb", &nb);
    let output = dir.path().join("out.ipynb");
    let report = dir.path().join("report.html");
    let done = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--no-record",
        "--no-progress-bar",
        "-p",
        "limit",
        "7",
        "--secret",
        "token",
        "s3cr3t-value",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(done.status.code(), Some(1), "{}", stderr(&done));
    let page = std::fs::read_to_string(&report).expect("the report is written when a cell fails");
    assert!(
        !page.contains("s3cr3t-value"),
        "a secret leaked into the report"
    );
    assert!(page.contains("[REDACTED]"));
    assert!(page.contains("<title>Nightly check</title>"));
    assert!(page.contains("nbx-status-bad\">failed</dd>"), "{page}");
    assert!(page.contains("<dt>Kernel</dt><dd>python3</dd>"));
    assert!(page.contains("<dt>Started</dt>") && page.contains("<dt>Duration</dt>"));
    assert!(
        page.contains("<tr><th>limit</th><td><code>7</code></td></tr>"),
        "{page}"
    );
    // A link to the failed cell, whose anchor exists; the papermill banner is kept.
    let saved = read_nb(&output);
    let failed = saved["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metadata"]["papermill"]["exception"] == Value::Bool(true))
        .expect("a failed cell");
    let anchor = format!("cell-id={}", failed["id"].as_str().unwrap());
    assert!(
        page.contains(&format!("<a href=\"#{anchor}\">In [")),
        "{page}"
    );
    assert!(page.contains(&format!("<div id=\"{anchor}\"")));
    assert!(page.contains("id=\"papermill-error-cell\""));
    assert!(page.contains("An Exception was encountered at"));
    assert!(page.contains("<strong>RuntimeError</strong>: limit 7 exceeded"));
}

#[test]
fn run_report_on_success_hides_input_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(vec![code("print('visible output')", &[])]);
    let input = write_nb(dir.path(), "ok.ipynb", &nb);
    let report = dir.path().join("ok.html");
    // Notebook to stdout, report to a file: the report comes from the notebook in memory.
    let done = run(&[
        "run",
        input.to_str().unwrap(),
        "-",
        "--no-record",
        "--no-progress-bar",
        "--no-input",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(page.contains("visible output"));
    assert!(!page.contains("print("), "input shown despite --no-input");
    assert!(
        page.contains("nbx-status-ok\">completed</dd>") || page.contains("nbx-status-ok\">"),
        "{page}"
    );
    assert!(page.contains("<title>ok.ipynb</title>"));
}

// ---- Headless Chromium (tests/common/chromium.rs) ----------------------------------

#[test]
fn chromium_detects_requests_and_console_errors() {
    // The detectors themselves: a page that fetches (a loopback address) and logs.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("control.html");
    std::fs::write(
        &page,
        "<html><body><img src=\"http://127.0.0.1:9/p.png\"><script>console.error('control-error')</script></body></html>",
    )
    .unwrap();
    let loaded = load(&page, None);
    assert!(
        loaded
            .requests
            .iter()
            .any(|u| u.starts_with("http://127.0.0.1:9/")),
        "{:?}",
        loaded.requests
    );
    assert!(
        loaded.console.iter().any(|l| l.contains("control-error")),
        "{:?}",
        loaded.console
    );
}

#[test]
fn reports_load_in_chromium_with_no_request_and_no_console_message() {
    let dir = tempfile::tempdir().unwrap();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for name in ["rich", "failed", "markdown", "streams", "hostile"] {
        let html = dir.path().join(format!("{name}.html"));
        render(&fixture(&format!("{name}.ipynb")), &html, &[]);
        let loaded = load(&html, None);
        assert_eq!(
            loaded.requests,
            Vec::<String>::new(),
            "{name}: the page made requests"
        );
        assert_eq!(
            loaded.console,
            Vec::<String>::new(),
            "{name}: console messages"
        );
        // Nothing in the page ran: the title is still the report's.
        assert!(
            !loaded.dom.contains("pwned") && !loaded.dom.contains("<title>changed"),
            "{name}"
        );
        assert!(
            loaded.dom.contains("jp-Notebook"),
            "{name}: the page did not load"
        );
    }
    // Screenshots of three reports, kept as artifacts of the test run.
    for name in ["rich", "failed", "markdown"] {
        let html = dir.path().join(format!("{name}.html"));
        let png = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&png);
        let loaded = load(&html, Some(&png));
        assert!(
            loaded.requests.is_empty() && loaded.console.is_empty(),
            "{name}"
        );
        let bytes = std::fs::read(&png).expect("screenshot written");
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{name}: screenshot too small"
        );
    }
}

#[test]
fn report_is_refused_where_nothing_is_executed() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(dir.path(), "p.ipynb", &notebook(vec![code("x = 1", &[])]));
    let report = dir.path().join("r.html");
    let done = run(&[
        "run",
        input.to_str().unwrap(),
        dir.path().join("o.ipynb").to_str().unwrap(),
        "--prepare-only",
        "--no-record",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(done.status.code(), Some(2), "{}", stderr(&done));
    assert!(
        stderr(&done).starts_with("error: --report"),
        "{}",
        stderr(&done)
    );
    assert!(!report.exists());
}

#[test]
fn a_report_that_cannot_be_written_is_refused_before_the_run_and_file_urls_work() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let input = write_nb(
        dir.path(),
        "p.ipynb",
        &notebook(vec![code(
            &format!("open({:?}, 'w').close()", ran.display().to_string()),
            &[],
        )]),
    );
    let output = dir.path().join("o.ipynb");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let run_with_report = |report: &str| {
        run(&[
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--no-record",
            "--no-progress-bar",
            "--report",
            report,
        ])
    };
    let refused = [
        dir.path().join("missing").join("r.html"),
        file.join("r.html"),
        dir.path().to_owned(),
    ];
    for report in &refused {
        let report = report.to_str().unwrap();
        let o = run_with_report(report);
        assert_eq!(o.status.code(), Some(2), "{report}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "one line: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with(&format!("error: cannot write the report {report}: ")),
            "{}",
            stderr(&o)
        );
        assert!(!ran.exists(), "{report}: the notebook ran");
        assert!(!output.exists(), "{report}: an output was written");
    }
    assert!(!dir.path().join("missing").exists());
    // A file:// URL is the local path it names.
    let report = dir.path().join("r.html");
    let o = run_with_report(&format!("file://{}", report.display()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(ran.exists());
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
}

#[test]
fn mathjax_is_loaded_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let plain = render(&fixture("markdown.ipynb"), &dir.path().join("a.html"), &[]);
    assert!(
        !plain.contains("<script") && !plain.contains("src=\"http"),
        "no remote asset by default"
    );
    let url = "https://cdn.example/mathjax@3/es5/tex-chtml.js";
    let page = render(
        &fixture("markdown.ipynb"),
        &dir.path().join("b.html"),
        &["--mathjax-url", url],
    );
    assert!(
        page.contains(&format!("<script async src=\"{url}\"></script>")),
        "{page}"
    );
    // The page's policy lets that origin's script in, and nothing else.
    assert!(page.contains("script-src https://cdn.example;"), "{page}");
    assert!(page.contains("inlineMath:[[&#39;$&#39;") || page.contains("inlineMath:[['$'"));
}
