//! Headless Chromium for the page tests (Debian's `chromium`, installed by
//! scripts/chromium.sh): a one-shot loader with a net log (the report tests) and a
//! browser driven over the Chrome DevTools Protocol (the `nbexec serve` page tests).
//!
//! Every browser gets a fresh profile directory and its own process group, killed whole
//! when it is dropped; host names do not resolve, so nothing leaves the machine.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

pub fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("chromium"))
        .find(|p| p.exists());
    found.expect("no `chromium` on PATH: scripts/chromium.sh installs it (scripts/test.sh runs it)")
}

/// Chromium, headless, with a fresh profile in `profile` and nothing that talks to the
/// network by itself (as root it needs `--no-sandbox`).
pub fn chromium_command(profile: &Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1200,1600",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

pub struct Loaded {
    /// Console messages (CSP violations included).
    pub console: Vec<String>,
    /// URLs the page itself requested (the browser's own background traffic excluded).
    pub requests: Vec<String>,
    pub dom: String,
}

/// Loads `page` in headless Chromium with a net log; `screenshot` also saves a PNG.
pub fn load(page: &Path, screenshot: Option<&Path>) -> Loaded {
    let profile = tempfile::tempdir().unwrap();
    let netlog = profile.path().join("net.json");
    let mut cmd = chromium_command(profile.path());
    cmd.args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--log-net-log={}", netlog.display()));
    match screenshot {
        Some(p) => cmd.arg(format!("--screenshot={}", p.display())),
        None => cmd.arg("--dump-dom"),
    };
    cmd.arg(format!("file://{}", page.display()));
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    let (out, err) = {
        let mut so = child.stdout.take().unwrap();
        let mut se = child.stderr.take().unwrap();
        let t1 = std::thread::spawn(move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut so, &mut v).ok();
            v
        });
        let t2 = std::thread::spawn(move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut se, &mut v).ok();
            v
        });
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if started.elapsed() > Duration::from_secs(90) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 90 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (t1.join().unwrap(), t2.join().unwrap())
    };
    let err = String::from_utf8_lossy(&err);
    let console = err
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    let log: Value =
        serde_json::from_str(&std::fs::read_to_string(&netlog).expect("net log written"))
            .expect("net log is JSON");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_u64()
        .expect("event type");
    let requests = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_u64() == Some(start_job))
        .filter(|e| {
            e["params"]["initiator"]
                .as_str()
                .is_some_and(|i| i != "not an origin")
        })
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_owned))
        .collect();
    Loaded {
        console,
        requests,
        dom: String::from_utf8_lossy(&out).into_owned(),
    }
}

// ---- The DevTools Protocol ---------------------------------------------------------

type Socket = tungstenite::WebSocket<TcpStream>;

/// A headless Chromium driven over the DevTools Protocol WebSocket
/// (`--remote-debugging-port=0`, the port read from the profile's `DevToolsActivePort`).
pub struct Browser {
    child: Child,
    ws: Socket,
    next_id: u64,
    /// Events not yet looked at, in arrival order (with their `sessionId`).
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

/// One page (a target attached in flat mode).
pub struct Tab<'a> {
    browser: &'a mut Browser,
    session: String,
}

impl Browser {
    pub fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = chromium_command(profile.path());
        cmd.arg("--remote-debugging-port=0")
            .arg("--remote-debugging-address=127.0.0.1")
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().expect("start chromium");
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (port, path) = loop {
            let text = std::fs::read_to_string(&port_file).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                break (port.to_owned(), path.to_owned());
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("chromium exited before listening: {status}");
            }
            if Instant::now() > deadline {
                kill_group(&mut child);
                panic!("chromium did not write DevToolsActivePort within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stream = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
            .expect("connect to the DevTools port");
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .expect("DevTools WebSocket handshake");
        Browser {
            child,
            ws,
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        }
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let mut msg = json!({"id": self.next_id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .expect("send a DevTools command");
        self.next_id
    }

    /// Reads one message, waiting at most `within`; `None` on timeout.
    fn recv(&mut self, within: Duration) -> Option<Value> {
        let within = within.max(Duration::from_millis(1));
        self.ws.get_ref().set_read_timeout(Some(within)).unwrap();
        match self.ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                Some(serde_json::from_str(t.as_str()).expect("DevTools sends JSON"))
            }
            Ok(_) => Some(Value::Null),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                None
            }
            Err(e) => panic!("DevTools connection: {e}"),
        }
    }

    /// Sends a command and waits for its answer; panics on an error answer.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.try_call(session, method, params)
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// Sends a command and waits for its answer, the result or the error (events
    /// meanwhile are kept; a JavaScript dialog is recorded and dismissed, so a page
    /// cannot block the test).
    pub fn try_call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        let id = self.send(session, method, params);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("no answer to {method} within 60 s");
            }
            let Some(msg) = self.recv(left) else { continue };
            if msg["id"].as_u64() == Some(id) {
                return match msg.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(msg["result"].clone()),
                };
            }
            self.note(msg);
        }
    }

    fn note(&mut self, msg: Value) {
        if msg.get("method").is_none() {
            return; // the answer to a command nobody waits for
        }
        if msg["method"] == "Page.javascriptDialogOpening" {
            let session = msg["sessionId"].as_str().map(str::to_owned);
            self.send(
                session.as_deref(),
                "Page.handleJavaScriptDialog",
                json!({"accept": false}),
            );
        }
        self.events.push(msg);
    }

    /// Reads whatever arrives for `within` (events only).
    fn pump(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            if let Some(msg) = self.recv(left) {
                self.note(msg);
            }
        }
    }

    /// A new page, attached, with the Page, Runtime, Log and Network domains on.
    pub fn tab(&mut self) -> Tab<'_> {
        let target = self.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        let session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
        ] {
            self.call(Some(&session), domain, json!({}));
        }
        Tab {
            browser: self,
            session,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Kills the browser and every process it started (its own process group).
fn kill_group(child: &mut Child) {
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Tab<'_> {
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.browser.call(Some(&session), method, params)
    }

    /// Navigates and waits for the page's load event.
    pub fn goto(&mut self, url: &str) {
        self.take_events("Page.loadEventFired");
        let nav = self.call("Page.navigate", json!({"url": url}));
        assert!(nav.get("errorText").is_none(), "navigating to {url}: {nav}");
        self.wait_event("Page.loadEventFired", Duration::from_secs(30));
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression)
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    /// [`Tab::eval`], an exception or a missing context (mid-navigation) as `Err`.
    pub fn try_eval(&mut self, expression: &str) -> Result<Value, Value> {
        let session = self.session.clone();
        let r = self.browser.try_call(
            Some(&session),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        match r.get("exceptionDetails") {
            Some(e) => Err(e.clone()),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    /// Evaluates `expression` until it is truthy, within `within` (across navigations:
    /// an evaluation that fails counts as falsy); returns the last value.
    pub fn wait_for(&mut self, expression: &str, within: Duration) -> Result<Value, Value> {
        let deadline = Instant::now() + within;
        loop {
            let v = self.try_eval(expression).unwrap_or(Value::Null);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(v);
            }
            self.browser.pump(Duration::from_millis(100));
        }
    }

    /// Waits for an event of this page; panics after `within`.
    pub fn wait_event(&mut self, method: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.take_events(method).into_iter().next() {
                return e;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("no {method} within {within:?}");
            }
            self.browser.pump(left.min(Duration::from_millis(100)));
        }
    }

    /// Removes and returns this page's events named `method` seen so far.
    pub fn take_events(&mut self, method: &str) -> Vec<Value> {
        let (mine, rest): (Vec<Value>, Vec<Value>) = std::mem::take(&mut self.browser.events)
            .into_iter()
            .partition(|e| e["method"] == method && e["sessionId"] == self.session.as_str());
        self.browser.events = rest;
        mine
    }

    /// The page's console output, errors and CSP reports seen so far, as text.
    pub fn console(&mut self) -> Vec<String> {
        self.browser.pump(Duration::from_millis(50));
        let mut out = Vec::new();
        for e in self.take_events("Runtime.consoleAPICalled") {
            out.push(format!(
                "console.{}: {}",
                e["params"]["type"], e["params"]["args"]
            ));
        }
        for e in self.take_events("Runtime.exceptionThrown") {
            out.push(format!("exception: {}", e["params"]["exceptionDetails"]));
        }
        for e in self.take_events("Log.entryAdded") {
            out.push(format!(
                "{} {}: {}",
                e["params"]["entry"]["source"],
                e["params"]["entry"]["level"],
                e["params"]["entry"]["text"]
            ));
        }
        out
    }

    /// The headers of the responses to the page's top-level document loads so far
    /// (names lower-cased), oldest first.
    pub fn document_headers(&mut self) -> Vec<(String, serde_json::Map<String, Value>)> {
        self.browser.pump(Duration::from_millis(50));
        self.take_events("Network.responseReceived")
            .into_iter()
            .filter(|e| e["params"]["type"] == "Document")
            .map(|e| {
                let r = &e["params"]["response"];
                let headers = r["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect();
                (r["url"].as_str().unwrap_or_default().to_owned(), headers)
            })
            .collect()
    }

    /// JavaScript dialogs (alert, confirm, prompt) the page opened so far.
    pub fn dialogs(&mut self) -> Vec<String> {
        self.browser.pump(Duration::from_millis(50));
        self.take_events("Page.javascriptDialogOpening")
            .into_iter()
            .map(|e| e["params"]["message"].to_string())
            .collect()
    }

    /// Saves a PNG of the page's content (the document's full width, down to the end
    /// of its body).
    pub fn screenshot(&mut self, path: &Path) {
        let size = self.eval(
            "[document.documentElement.scrollWidth, \
              Math.ceil(document.body.getBoundingClientRect().bottom + window.scrollY) + 16]",
        );
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}
