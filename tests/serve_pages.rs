//! The `nbexec serve` HTML pages (`f=html`) in a real headless Chromium, driven over the
//! DevTools Protocol: the jobs page, a job page following its run live, the Cancel
//! button, and escaping. Screenshots are kept under `$CARGO_TARGET_TMPDIR/serve-pages/`.

mod common;

use std::time::Duration;

use common::chromium::Browser;

#[test]
fn the_driver_sees_dialogs_console_errors_and_text() {
    // The detectors the page tests rely on, on a page that does what a served page must
    // never do.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("control.html");
    std::fs::write(
        &page,
        "<html><body><p>control text</p><script>console.error('control-error'); alert('control-alert')</script></body></html>",
    )
    .unwrap();
    let mut browser = Browser::launch();
    let mut tab = browser.tab();
    tab.goto(&format!("file://{}", page.display()));
    assert_eq!(tab.eval("document.body.innerText"), "control text");
    let dialogs = tab.dialogs();
    assert_eq!(dialogs, vec!["\"control-alert\"".to_owned()]);
    let console = tab.console();
    assert!(
        console.iter().any(|l| l.contains("control-error")),
        "{console:?}"
    );
    assert!(
        tab.wait_for("document.readyState === 'complete'", Duration::from_secs(5))
            .is_ok()
    );
}
