//! Shared helpers for the end-to-end tests: they run the real `nbexec` binary on
//! notebooks in temporary directories, with the project's own Python kernel.
#![allow(dead_code)]

pub mod chromium;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn venv() -> PathBuf {
    let venv = root().join(".venv");
    assert!(
        venv.join("bin/python").exists(),
        "no Python environment at {}: run scripts/venv.sh first (scripts/test.sh does)",
        venv.display()
    );
    venv
}

/// The `nbexec` binary, with the project's kernel reachable and nothing else assumed.
pub fn nbexec() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nbexec"));
    cmd.env("VIRTUAL_ENV", venv());
    cmd.env_remove("JUPYTER_PATH");
    cmd.env(
        "NBEXEC_STATE_DIR",
        std::env::temp_dir().join("nbexec-test-state"),
    );
    cmd
}

/// A code cell; `tags` may be empty.
pub fn code(source: &str, tags: &[&str]) -> Value {
    json!({"cell_type": "code", "execution_count": null, "metadata": {"tags": tags}, "outputs": [], "source": source})
}

pub fn markdown(source: &str) -> Value {
    json!({"cell_type": "markdown", "metadata": {}, "source": source})
}

/// A 4.5 Python notebook with these cells (ids added).
pub fn notebook(cells: Vec<Value>) -> Value {
    let cells: Vec<Value> = cells
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c["id"] = json!(format!("cell{i:04}"));
            c
        })
        .collect();
    json!({
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5
    })
}

pub fn write_nb(dir: &Path, name: &str, nb: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(nb).unwrap()).unwrap();
    path
}

pub fn read_nb(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn run(args: &[&str]) -> Output {
    nbexec().args(args).output().expect("nbexec runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Joined text of a cell's stream outputs of `name`.
pub fn stream_text(cell: &Value, name: &str) -> String {
    cell["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["output_type"] == "stream" && o["name"] == name)
        .map(|o| match &o["text"] {
            Value::Array(lines) => lines
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect::<String>(),
            Value::String(s) => s.clone(),
            _ => String::new(),
        })
        .collect()
}

pub fn status(cell: &Value) -> &str {
    cell["metadata"]["papermill"]["status"]
        .as_str()
        .unwrap_or("")
}

/// Finds the cell whose source (joined) contains `needle`.
pub fn cell_with<'a>(nb: &'a Value, needle: &str) -> &'a Value {
    nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| source(c).contains(needle))
        .unwrap_or_else(|| panic!("no cell contains {needle:?}"))
}

pub fn source(cell: &Value) -> String {
    match &cell["source"] {
        Value::Array(lines) => lines.iter().map(|l| l.as_str().unwrap()).collect(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// Asserts that the kernel recorded in `metadata.nbexec.kernel_pid` is gone.
pub fn assert_kernel_gone(nb: &Value) {
    let pid = nb["metadata"]["nbexec"]["kernel_pid"]
        .as_i64()
        .expect("kernel_pid recorded");
    assert_pid_gone(pid as i32);
}

pub fn assert_pid_gone(pid: i32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        // Gone, or a zombie that only its (exited) parent could reap.
        let alive = match &stat {
            Ok(s) => !s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z'),
            Err(_) => false,
        };
        if !alive {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kernel process {pid} is still running"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs `script` with the project's Python, `input` on its stdin; returns its stdout.
pub fn python(script: &str, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(venv().join("bin/python"))
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start Python");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().expect("wait for Python");
    assert!(out.status.success(), "Python failed");
    out.stdout
}

/// Runs the project's papermill (the oracle) with `args`.
pub fn papermill(args: &[&str]) -> Output {
    Command::new(venv().join("bin/papermill"))
        .args(args)
        .env("VIRTUAL_ENV", venv())
        .output()
        .expect("papermill runs")
}

/// What `nbexec` did with its stderr on a pseudo-terminal.
pub struct OnTerminal {
    pub code: Option<i32>,
    /// Its stdout (a pipe).
    pub stdout: Vec<u8>,
    /// Everything it wrote to the terminal (its stderr), `\r\n` as the terminal sent it.
    pub terminal: String,
}

/// Runs `nbexec args` with stderr on a pseudo-terminal (stdout a pipe, stdin empty),
/// through Python's `pty` module from the project's environment.
pub fn run_on_terminal(args: &[&str]) -> OnTerminal {
    const DRIVER: &str = r#"
import os, pty, subprocess, sys
out_path = sys.argv[1]
master, slave = pty.openpty()
with open(out_path, "wb") as out:
    child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=out, stderr=slave)
os.close(slave)
seen = bytearray()
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:  # EIO: the child closed its side
        break
    if not chunk:
        break
    seen += chunk
code = child.wait(timeout=120)
sys.stdout.buffer.write(bytes(seen))
sys.exit(code if code >= 0 else 128 - code)
"#;
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("stdout");
    let cmd = nbexec();
    let mut driver = Command::new(venv().join("bin/python"));
    driver
        .arg("-c")
        .arg(DRIVER)
        .arg(&out_path)
        .arg(cmd.get_program())
        .args(args)
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .env_remove("JUPYTER_PATH");
    let done = driver.output().expect("python runs the pty driver");
    assert!(
        done.stderr.is_empty(),
        "pty driver: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    OnTerminal {
        code: done.status.code(),
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        terminal: String::from_utf8_lossy(&done.stdout).into_owned(),
    }
}

/// `nbexec jobs ARGS --state-dir STATE`: (exit code, stdout).
pub fn jobs_cmd(state: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = nbexec()
        .arg("jobs")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("nbexec jobs runs");
    (out.status.code(), stdout(&out))
}

/// `nbexec jobs show ID -f json`.
pub fn job_show(state: &Path, id: &str) -> Value {
    let (code, text) = jobs_cmd(state, &["show", id, "-f", "json"]);
    assert_eq!(code, Some(0), "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Every job in the registry (`nbexec jobs -f json --all`).
pub fn job_list(state: &Path) -> Vec<Value> {
    let (code, text) = jobs_cmd(state, &["-f", "json", "--all"]);
    assert_eq!(code, Some(0), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["asyncNotebookJobs"].as_array().unwrap().clone()
}

/// Waits (bounded) until job `id` has finished (COMPLETED, FAILED or CANCELLED).
pub fn wait_job_finished(state: &Path, id: &str, within: std::time::Duration) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let job = job_show(state, id);
        if matches!(
            job["status"].as_str(),
            Some("COMPLETED" | "FAILED" | "CANCELLED")
        ) {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} is {} after {within:?}",
            job["status"]
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Pids of the processes whose command line has every one of `args` as an argument.
pub fn pids_with_args(args: &[&str]) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let have: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.iter().all(|a| have.contains(&a.as_bytes())) {
            pids.push(pid);
        }
    }
    pids
}

/// Pids whose parent is `parent`.
pub fn children_of(parent: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1).map(str::to_owned))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `needle` appears in the command line or the environment of process `pid`.
pub fn process_shows(pid: i32, needle: &str) -> bool {
    ["cmdline", "environ"].iter().any(|f| {
        std::fs::read(format!("/proc/{pid}/{f}"))
            .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or(false)
    })
}

/// Waits (bounded, 5 s) until process `pid` has reached the Rust runtime's start-up,
/// which ignores SIGPIPE before `main`: a fixed point after `exec` and the dynamic
/// loader, the same for every build of nbexec. Returns false if it never did (it
/// may have ended).
pub fn wait_rust_runtime_started(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return false;
        };
        let ignored = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .unwrap_or(0);
        if ignored & (1 << (libc::SIGPIPE - 1)) != 0 {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    false
}

/// The permission bits of `path` (not following a final symlink).
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Runs the child under `mask` as its umask.
pub fn with_umask(cmd: &mut Command, mask: u32) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: umask(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask as libc::mode_t);
            Ok(())
        })
    }
}

/// Makes a directory read-only for as long as the guard lives: immutable when run as
/// root (whom permission bits do not stop), mode 0555 otherwise.
pub struct ReadOnlyDir(PathBuf);

impl ReadOnlyDir {
    pub fn new(dir: &Path) -> ReadOnlyDir {
        use std::os::unix::fs::PermissionsExt;
        if unsafe { libc::geteuid() } == 0 {
            let ok = Command::new("chattr")
                .arg("+i")
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chattr +i {} failed", dir.display());
        } else {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        ReadOnlyDir(dir.to_owned())
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if unsafe { libc::geteuid() } == 0 {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        } else {
            let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
        }
    }
}

/// The start time of process `pid` as nbexec records it (field 22 of its stat).
pub fn process_start(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    after.split_whitespace().nth(19).unwrap().to_owned()
}

/// A real Jupyter Kernel Gateway (from `.venv-gateway`, made by
/// `scripts/venv.sh gateway`) on a free loopback port, with a token. Killed, with
/// every kernel it started, when dropped. With `NBEXEC_GATEWAY=enterprise`, an
/// Enterprise Gateway instead (`.venv-enterprise-gateway`, made by
/// `scripts/venv.sh enterprise-gateway`): the opt-in run against it.
pub struct KernelGateway {
    pub url: String,
    pub port: u16,
    pub token: String,
    child: Option<std::process::Child>,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    /// How clients trust it (and prove themselves to it), when it serves https.
    tls: Option<ClientTls>,
}

/// What a client of an https test gateway needs: the CA that signed its
/// certificate and, if it asks for one, a client certificate and key.
#[derive(Clone, Debug)]
pub struct ClientTls {
    pub ca: PathBuf,
    pub client: Option<(PathBuf, PathBuf)>,
}

/// A throwaway certificate authority with a server certificate for 127.0.0.1 and a
/// client certificate signed by it, and an unrelated authority: PEM files in a
/// temporary directory, made fresh by each test.
pub struct TestPki {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// An authority that signed none of these.
    pub other_ca: PathBuf,
}

impl TestPki {
    pub fn generate() -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let authority = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
        };
        let ca = authority("nbexec test CA");
        let other = authority("another test CA");
        let issuer: &rcgen::Issuer<'_, KeyPair> = &ca;
        let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![usage];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            "127.0.0.1",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            vec![],
            "nbexec test client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        TestPki {
            ca: write("ca.pem", ca.pem()),
            other_ca: write("other-ca.pem", other.pem()),
            server_cert: write("server.pem", server_cert),
            server_key: write("server-key.pem", server_key),
            client_cert: write("client.pem", client_cert),
            client_key: write("client-key.pem", client_key),
            _dir: dir,
        }
    }
}

impl KernelGateway {
    pub fn start() -> KernelGateway {
        Self::start_with(None)
    }

    /// Allowing at most `max_kernels` kernels at once.
    pub fn start_with(max_kernels: Option<u32>) -> KernelGateway {
        Self::start_full(max_kernels, None)
    }

    /// Serving https with `pki`'s server certificate; with `require_client_cert`,
    /// it also asks clients for a certificate signed by `pki`'s CA.
    pub fn start_tls(pki: &TestPki, require_client_cert: bool) -> KernelGateway {
        Self::start_full(None, Some((pki, require_client_cert)))
    }

    /// Which gateway the tests run against: `kernel` (default) or `enterprise`.
    pub fn kind() -> String {
        std::env::var("NBEXEC_GATEWAY").unwrap_or_else(|_| "kernel".into())
    }

    fn start_full(max_kernels: Option<u32>, tls: Option<(&TestPki, bool)>) -> KernelGateway {
        let enterprise = Self::kind() == "enterprise";
        let (venv, program, app) = if enterprise {
            (
                root().join(".venv-enterprise-gateway"),
                "jupyter-enterprisegateway",
                "EnterpriseGatewayApp",
            )
        } else {
            (
                root().join(".venv-gateway"),
                "jupyter-kernelgateway",
                "KernelGatewayApp",
            )
        };
        assert!(
            venv.join("bin").join(program).exists(),
            "no {program} in {}: run scripts/venv.sh {} first (scripts/test.sh does for Kernel Gateway)",
            venv.display(),
            if enterprise {
                "enterprise-gateway"
            } else {
                "gateway"
            }
        );
        let mut extra = Vec::new();
        if let Some(n) = max_kernels {
            extra.push(format!("--{app}.max_kernels={n}"));
        }
        extra.push(if enterprise {
            format!("--{app}.list_kernels=True")
        } else {
            "--JupyterWebsocketPersonality.list_kernels=True".to_owned()
        });
        let mut client_tls = None;
        if let Some((pki, require_client_cert)) = tls {
            extra.push(format!("--{app}.certfile={}", pki.server_cert.display()));
            extra.push(format!("--{app}.keyfile={}", pki.server_key.display()));
            if require_client_cert {
                extra.push(format!("--{app}.client_ca={}", pki.ca.display()));
            }
            client_tls = Some(ClientTls {
                ca: pki.ca.clone(),
                client: require_client_cert
                    .then(|| (pki.client_cert.clone(), pki.client_key.clone())),
            });
        }
        let dir = tempfile::tempdir().unwrap();
        let token = format!("tok{}", std::process::id());
        let log = dir.path().join("kg.log");
        let scheme = if client_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut gw = KernelGateway {
            url: String::new(),
            port: 0,
            token,
            child: None,
            log,
            _dir: dir,
            tls: client_tls,
        };
        let (port, child) = start_on_free_port(
            "the Kernel Gateway",
            &gw.log,
            |port| {
                let mut c = Command::new(venv.join("bin").join(program));
                c.arg(format!("--{app}.ip=127.0.0.1"))
                    .arg(format!("--{app}.port={port}"))
                    .arg(format!("--{app}.auth_token={}", gw.token))
                    .arg(format!("--{app}.port_retries=0"))
                    .args(&extra)
                    .current_dir(gw._dir.path())
                    .env("PATH", format!("{}/bin:/usr/bin:/bin", venv.display()))
                    .env("JUPYTER_RUNTIME_DIR", gw._dir.path().join("runtime"))
                    .env("JUPYTER_DATA_DIR", gw._dir.path().join("data"))
                    .env_remove("JUPYTER_PATH")
                    .env_remove("VIRTUAL_ENV");
                c
            },
            |port| match &gw.tls {
                Some(tls) => {
                    let url = format!("{scheme}://127.0.0.1:{port}");
                    gateway_client(&url, &gw.token, tls)
                        .is_ok_and(|client| block_on(client.kernelspecs()).is_ok())
                }
                None => {
                    let auth = format!("token {}", gw.token);
                    http_request(port, "GET", "/api", &[("Authorization", &auth)], b"").0 == 200
                }
            },
        );
        gw.url = format!("{scheme}://127.0.0.1:{port}");
        gw.port = port;
        gw.child = Some(child);
        gw
    }

    /// A client of this https gateway, trusting its CA (and with the client
    /// certificate it asks for).
    fn tls_client(&self) -> Result<nbexec_gateway::Gateway, nbexec_gateway::GatewayError> {
        let tls = self.tls.as_ref().expect("an https gateway");
        gateway_client(&self.url, &self.token, tls)
    }

    /// `GET path` with the token: (status, body); status 0 if nothing answers.
    /// Plain http gateways only.
    pub fn get(&self, path: &str) -> (u16, String) {
        assert!(self.tls.is_none(), "get() speaks plain http");
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, String::new());
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: token {}\r\nConnection: close\r\n\r\n",
            self.token
        );
        if s.write_all(req.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// The kernels the gateway runs now.
    pub fn kernels(&self) -> Vec<Value> {
        if self.tls.is_some() {
            let client = self.tls_client().unwrap();
            return block_on(client.kernels()).unwrap();
        }
        let (status, body) = self.get("/api/kernels");
        assert_eq!(status, 200, "GET /api/kernels: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// Asserts the gateway runs no kernel (waiting briefly: DELETE is answered
    /// before the kernel is gone from the list on a loaded machine).
    pub fn assert_no_kernels(&self) {
        for _ in 0..50 {
            if self.kernels().is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the gateway still runs kernels: {:?}", self.kernels());
    }

    /// `nbexec` pointed at this gateway by the environment Jupyter reads.
    pub fn nbexec(&self) -> Command {
        let mut cmd = nbexec();
        cmd.env("JUPYTER_GATEWAY_URL", &self.url)
            .env("JUPYTER_GATEWAY_AUTH_TOKEN", &self.token)
            // Enterprise Gateway refuses kernels to `root` (its unauthorized_users).
            .env("KERNEL_USERNAME", "nbexec-test");
        if let Some(tls) = &self.tls {
            cmd.env("JUPYTER_GATEWAY_CA_CERTS", &tls.ca);
            if let Some((cert, key)) = &tls.client {
                cmd.env("JUPYTER_GATEWAY_CLIENT_CERT", cert)
                    .env("JUPYTER_GATEWAY_CLIENT_KEY", key);
            }
        }
        cmd
    }

    /// Kills the gateway and everything it started (SIGKILL to its process group).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for KernelGateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A client of the https gateway at `url`, trusting `tls.ca` (and with the client
/// certificate it asks for).
fn gateway_client(
    url: &str,
    token: &str,
    tls: &ClientTls,
) -> Result<nbexec_gateway::Gateway, nbexec_gateway::GatewayError> {
    let mut cfg = nbexec_gateway::GatewayConfig::new(url)?;
    cfg.auth_token = Some(token.to_owned());
    cfg.ca_certs = Some(tls.ca.clone());
    if let Some((cert, key)) = &tls.client {
        cfg.client_cert = Some(cert.clone());
        cfg.client_key = Some(key.clone());
    }
    cfg.request_timeout = std::time::Duration::from_secs(10);
    nbexec_gateway::Gateway::new(cfg)
}

/// Runs a future to completion on a runtime of its own.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A loopback TCP proxy to `127.0.0.1:target` whose open connections can be cut at
/// once while new ones keep going through: a network blip.
pub struct TcpProxy {
    pub port: u16,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TcpProxy {
    pub fn start(target: u16) -> TcpProxy {
        Self::start_with(target, None)
    }

    /// A proxy that holds the first bytes of every answer for `delay` before
    /// passing them on (and the rest of it after them): a slow server, as seen from
    /// the client, whose requests have arrived all the same.
    pub fn start_slow(target: u16, delay: std::time::Duration) -> TcpProxy {
        Self::start_with(target, Some(delay))
    }

    fn start_with(target: u16, delay: Option<std::time::Duration>) -> TcpProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, s) = (conns.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let pipe = |mut from: std::net::TcpStream,
                            mut to: std::net::TcpStream,
                            delay: Option<std::time::Duration>| {
                    std::thread::spawn(move || {
                        if let Some(delay) = delay {
                            let mut first = [0u8; 16384];
                            if let Ok(n @ 1..) = from.read(&mut first) {
                                std::thread::sleep(delay);
                                let _ = to.write_all(&first[..n]);
                            }
                        }
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                };
                let mut list = c.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                drop(list);
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    None,
                );
                pipe(server, client, delay);
            }
        });
        TcpProxy { port, conns, stop }
    }

    /// Cuts every open connection; returns how many there were.
    pub fn cut(&self) -> usize {
        let mut list = self.conns.lock().unwrap();
        let n = list.len() / 2;
        for s in list.drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        n
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut();
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Runs `cmd` to completion, or SIGKILLs it after `limit` and returns `None`: a test
/// of a possible hang then fails with a message instead of hanging itself.
pub fn output_within(mut cmd: Command, limit: std::time::Duration) -> Option<Output> {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}

/// `nbexec users add NAME --role ROLE -f FILE` with `password` on standard input.
pub fn add_user(file: &Path, name: &str, role: &str, password: &str) -> Output {
    use std::io::Write;
    let mut child = nbexec()
        .args(["users", "add", name, "--role", role, "-f"])
        .arg(file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().expect("waits")
}

/// `nbexec schedule ARGS --state-dir STATE`: the whole output.
pub fn schedule_cmd(state: &Path, args: &[&str]) -> Output {
    nbexec()
        .arg("schedule")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("nbexec schedule runs")
}

/// `nbexec schedule ARGS --state-dir STATE -f json`, which must succeed.
pub fn schedule_json(state: &Path, args: &[&str]) -> Value {
    let out = schedule_cmd(state, &[args, &["-f", "json"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("JSON on stdout")
}

/// A running `nbexec serve --bind 127.0.0.1:0` with its own state directory, stopped
/// (SIGKILL, then reaped) when dropped. Requests go through a real HTTP client.
pub struct Server {
    pub child: Option<std::process::Child>,
    /// `http://127.0.0.1:PORT/admin`
    pub url: String,
    pub state: PathBuf,
    pub stderr_path: PathBuf,
    /// Kept open: the server's stdout must not become a broken pipe.
    _stdout: Option<std::io::BufReader<std::process::ChildStdout>>,
    pub rt: tokio::runtime::Runtime,
    pub http: reqwest::Client,
}

/// A server response: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.body))
    }
}

impl Server {
    /// Starts `nbexec serve --bind 127.0.0.1:0 --state-dir STATE ARGS…` and waits
    /// (bounded) for its first stdout line, the address it listens on.
    pub fn start(state: &Path, args: &[&str]) -> Server {
        Self::start_with_env(state, args, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with_env(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        use std::io::BufRead;
        std::fs::create_dir_all(state).unwrap();
        let stderr_path = state.with_extension(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let err = std::fs::File::create(&stderr_path).unwrap();
        // Whatever can fail without the server is set up before it starts, so no
        // failure here leaves a server running behind the test.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let http = http_client(std::time::Duration::from_secs(60));
        let mut child = nbexec()
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("nbexec serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send((line, reader));
        });
        let (line, reader) = match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(x) => x,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "nbexec serve printed nothing in 60 s: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        };
        let url = line
            .trim()
            .strip_prefix("nbexec serve: listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!(
                    "unexpected first line {line:?}: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                )
            })
            .to_owned();
        Server {
            child: Some(child),
            url,
            state: state.to_owned(),
            stderr_path,
            _stdout: Some(reader),
            rt,
            http,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// What the server wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        self.rt.block_on(async {
            let resp = req.send().await.expect("the server answers");
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = resp.text().await.unwrap_or_default();
            Answer {
                status,
                content_type,
                body,
            }
        })
    }

    /// `url` + `path` (a path under /admin, e.g. `/notebooks/jobs?f=json`).
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(self.at(path)))
    }

    /// GET an absolute URL.
    pub fn get_url(&self, url: &str) -> Answer {
        self.send(self.http.get(url))
    }

    /// POST a form (`application/x-www-form-urlencoded`).
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.post_form_url(self.at(path), fields)
    }

    /// POST a form to an absolute URL.
    fn post_form_url(&self, url: String, fields: &[(&str, &str)]) -> Answer {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            self.http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
    }

    /// POST to `path` announcing a form body of `length` bytes, send only the
    /// head, and read the answer (raw TCP).
    pub fn raw_post_head(&self, path: &str, length: usize) -> Answer {
        use std::io::{Read, Write};
        let rest = self.url.strip_prefix("http://").unwrap();
        let (host, base) = rest.split_once('/').unwrap();
        let mut s = std::net::TcpStream::connect(host).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let head = format!(
            "POST /{base}{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\nitemId="
        );
        s.write_all(head.as_bytes()).unwrap();
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the headers and the announced body length have arrived.
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
            let t = String::from_utf8_lossy(&text);
            if let Some((h, b)) = t.split_once("\r\n\r\n") {
                let len = h
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                if len.is_some_and(|l| b.len() >= l) {
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_default();
        Answer {
            status,
            content_type,
            body: body.to_owned(),
        }
    }

    /// POST `body` as `content_type`.
    pub fn send_body(&self, path: &str, content_type: &str, body: &str) -> Answer {
        self.send(
            self.http
                .post(self.at(path))
                .header("content-type", content_type)
                .body(body.to_owned()),
        )
    }

    /// POST a JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.send(
            self.http
                .post(self.at(path))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    }

    /// executeNotebook of `item` with `params` (a form, f=json); the job id.
    pub fn execute(&self, item: &str, params: &Value, extra: &[(&str, &str)]) -> String {
        let p = params.to_string();
        let mut fields = vec![
            ("itemId", item),
            ("notebookParameters", p.as_str()),
            ("f", "json"),
        ];
        fields.extend_from_slice(extra);
        let a = self.post_form("/notebooks/executeNotebook", &fields);
        assert_eq!(a.status, 200, "{}\n{}", a.body, self.log());
        let v = a.json();
        assert_eq!(v["status"], "success", "{v}");
        v["jobId"].as_str().unwrap().to_owned()
    }

    /// The job's detail (f=json).
    pub fn job(&self, id: &str) -> Value {
        let a = self.get(&format!("/notebooks/jobs/{id}?f=json"));
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()
    }

    /// Waits (bounded) until job `id` is in `status`, or finished if `status` is
    /// None; returns its detail.
    pub fn wait_job(&self, id: &str, status: Option<&str>, within: std::time::Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let job = self.job(id);
            let s = job["status"].as_str().unwrap_or("").to_owned();
            let done = match status {
                Some(want) => s == want,
                None => matches!(s.as_str(), "COMPLETED" | "FAILED" | "CANCELLED"),
            };
            if done {
                return job;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {id} is {s} after {within:?}: {job}\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits (bounded) for the server to exit; its exit status.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        let child = self.child.as_mut().expect("the server runs");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit within {within:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTPS request to a loopback server with a self-signed certificate, on rustls
/// with the ring provider; any certificate is accepted and the one served is returned.
/// `url` is `https://127.0.0.1:PORT/path?query`. (reqwest here has no TLS: giving it
/// rustls would change the features of the client inside the binary under test.)
pub fn https_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String, Vec<u8>)> {
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};

    #[derive(Debug)]
    struct AnyCert(Arc<rustls::crypto::CryptoProvider>, Arc<Mutex<Vec<u8>>>);
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            *self.1.lock().unwrap() = end_entity.to_vec();
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    let rest = url.strip_prefix("https://").expect("an https URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider, seen.clone())))
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let tcp = std::net::TcpStream::connect(authority)?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let path = if path.is_empty() { "/" } else { path };
    let head = request_head(method, authority, path, headers, body.len());
    tls.write_all(head.as_bytes())?;
    tls.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A server that closes without close_notify: what arrived is the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e),
    }
    let (status, body) = parse_response(&raw);
    let cert = seen.lock().unwrap().clone();
    Ok((status, body, cert))
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._*".contains(&b) {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `nbexec items add NB --state-dir STATE`: the new item's id.
pub fn add_item(state: &Path, nb: &Path) -> String {
    let out = nbexec()
        .args(["items", "add"])
        .arg(nb)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("nbexec items add runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    id
}

/// `nbexec items add NB --title TITLE --state-dir STATE`: the new item's id.
pub fn add_item_titled(state: &Path, nb: &Path, title: &str) -> String {
    let out = nbexec()
        .args(["items", "add"])
        .arg(nb)
        .args(["--title", title, "--state-dir"])
        .arg(state)
        .output()
        .expect("nbexec items add runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    id
}

/// The item store's record of item `id` in `state`.
pub fn item_record(state: &Path, id: &str) -> Value {
    read_nb(&state.join("items").join(id).join("item.json"))
}

/// The item's notebook in `state`.
pub fn item_notebook(state: &Path, id: &str) -> Value {
    read_nb(&state.join("items").join(id).join("notebook.ipynb"))
}

/// One request a [`HookServer`] received.
#[derive(Debug, Clone)]
pub struct HookRequest {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HookRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a [`HookServer`] answers one request.
#[derive(Debug, Clone, Copy)]
pub enum HookAnswer {
    Status(u16),
    /// Closes the connection without answering (a server that is going down).
    Drop,
}

/// A webhook receiver for outbound notifications: a real HTTP/1.1 listener on
/// 127.0.0.1 (an ephemeral port) that records every request and answers from a
/// script (then 200). Stops when dropped.
pub struct HookServer {
    pub url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<HookRequest>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HookServer {
    pub fn start(script: Vec<HookAnswer>) -> HookServer {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (reqs, halt) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut script = script.into_iter();
            while !halt.load(Ordering::Relaxed) {
                let mut conn = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    }
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break Some(i);
                    }
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break None,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let Some(head_end) = head_end else { continue };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut lines = head.split("\r\n");
                let mut first = lines.next().unwrap_or("").split(' ');
                let method = first.next().unwrap_or("").to_owned();
                let path = first.next().unwrap_or("").to_owned();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = buf[head_end + 4..].to_vec();
                while body.len() < len {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => body.extend_from_slice(&chunk[..n]),
                    }
                }
                reqs.lock().unwrap().push(HookRequest {
                    method,
                    path,
                    headers,
                    body,
                });
                match script.next().unwrap_or(HookAnswer::Status(200)) {
                    HookAnswer::Drop => drop(conn),
                    HookAnswer::Status(code) => {
                        let _ = conn.write_all(
                            format!(
                                "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            )
                            .as_bytes(),
                        );
                    }
                }
            }
        });
        HookServer {
            url,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<HookRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits (bounded) for at least `n` requests.
    pub fn wait_for(&self, n: usize, within: std::time::Duration) -> Vec<HookRequest> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let got = self.requests();
            if got.len() >= n || std::time::Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, computed by Python's hmac module (an
/// implementation independent of nbexec's).
pub fn python_hmac_hex(secret: &str, body: &[u8]) -> String {
    let script = format!(
        "import hmac, hashlib, sys; print('sha256=' + hmac.new({secret:?}.encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest(), end='')"
    );
    String::from_utf8(python(&script, body)).unwrap()
}

/// `Base64(HMAC-SHA256(secret, body))`, computed by Python (independently of nbexec).
pub fn python_hmac_b64(secret: &str, body: &[u8]) -> String {
    let script = format!(
        "import hmac, hashlib, base64, sys; print(base64.b64encode(hmac.new({secret:?}.encode(), sys.stdin.buffer.read(), hashlib.sha256).digest()).decode(), end='')"
    );
    String::from_utf8(python(&script, body)).unwrap()
}

/// The stdout a server job's executed notebook printed, all cells together.
pub fn job_output_text(srv: &Server, id: &str) -> String {
    let a = srv.get(&format!("/notebooks/jobs/{id}/output.ipynb"));
    assert_eq!(a.status, 200, "{}", a.body);
    let nb = a.json();
    nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["cell_type"] == "code")
        .map(|c| stream_text(c, "stdout"))
        .collect()
}

impl Server {
    /// `http://127.0.0.1:PORT` (the server's origin, without `/admin`).
    pub fn origin(&self) -> String {
        self.url
            .split_once("/admin")
            .map(|(o, _)| o.to_owned())
            .unwrap_or_else(|| self.url.clone())
    }

    /// POST a form to a path from the origin (`/portal/…`, `/rest/…`).
    pub fn post_form_at(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.post_form_url(format!("{}{path}", self.origin()), fields)
    }

    /// GET a path from the origin.
    pub fn get_at(&self, path: &str) -> Answer {
        self.get_url(&format!("{}{path}", self.origin()))
    }

    /// POST raw bytes with headers to a path from the origin.
    pub fn post_raw_at(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let mut req = self
            .http
            .post(format!("{}{path}", self.origin()))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req)
    }
}

/// A free loopback port (bound, then released, so a server can take it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// A loopback port that refuses connections: bound but not listening, so no other
/// process (a kernel of a test running beside this one) can take it and answer
/// while the test holds it.
pub struct RefusingPort {
    pub port: u16,
    _socket: socket2::Socket,
}

impl RefusingPort {
    pub fn new() -> RefusingPort {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let port = socket
            .local_addr()
            .unwrap()
            .as_socket()
            .expect("an IP socket")
            .port();
        RefusingPort {
            port,
            _socket: socket,
        }
    }
}

/// Starts a loopback server on a free port and waits up to 90 s for `up(port)`.
/// `command(port)` is the server on that port; it is started in a process group of
/// its own, its output going to the file `log`. The port is free when probed, but
/// another process (a kernel of a test running beside this one) can take it before
/// the server binds it; the server then exits saying the address is in use, and it
/// is started again on a fresh port, five times at most. Any other early exit fails
/// at once, with the log.
pub fn start_on_free_port(
    what: &str,
    log: &Path,
    mut command: impl FnMut(u16) -> Command,
    mut up: impl FnMut(u16) -> bool,
) -> (u16, std::process::Child) {
    use std::os::unix::process::CommandExt;
    const TRIES: u32 = 5;
    for attempt in 1..=TRIES {
        let port = free_port();
        let log_file = std::fs::File::create(log).unwrap();
        let mut child = command(port)
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{what} starts: {e}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            if up(port) {
                return (port, child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                if attempt < TRIES && text.contains("in use") {
                    eprintln!("{what}: port {port} was taken before it bound it; trying another");
                    break;
                }
                panic!("{what} exited ({status}) before answering:\n{text}");
            }
            if std::time::Instant::now() >= deadline {
                kill_group(&mut child);
                panic!(
                    "{what} did not come up in 90 s:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    unreachable!("the last try returns or panics")
}

/// SIGKILL to a child started with `process_group(0)` and everything in its group.
pub fn kill_group(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// One HTTP/1.1 request to `127.0.0.1:port`: (status, body); status 0 if nothing
/// answers.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let req = request_head(
        method,
        &format!("127.0.0.1:{port}"),
        path,
        headers,
        body.len(),
    );
    if s.write_all(req.as_bytes())
        .and_then(|()| s.write_all(body))
        .is_err()
    {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

/// The head of an HTTP/1.1 request that closes its connection after the answer.
fn request_head(
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> String {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {body_len}\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// (status, body) of a raw HTTP/1.1 answer read to its end, a chunked body joined;
/// status 0 if there is no status line.
fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if !chunked {
        return (status, body.to_owned());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    (status, out)
}

/// A loopback S3 server (`moto_server` from the project's environment) on a free
/// port, killed when dropped. Its request log tells which requests nbexec made.
pub struct MotoServer {
    pub port: u16,
    pub url: String,
    child: Option<std::process::Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl MotoServer {
    pub fn start() -> MotoServer {
        Self::start_with(&[])
    }

    /// With extra environment for the server (moto's settings).
    pub fn start_with(env: &[(&str, &str)]) -> MotoServer {
        let program = venv().join("bin/moto_server");
        assert!(
            program.exists(),
            "no moto_server in {}: run scripts/venv.sh first (scripts/test.sh does)",
            venv().display()
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let (port, child) = start_on_free_port(
            "moto_server",
            &log,
            |port| {
                let mut c = Command::new(&program);
                c.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .envs(env.iter().copied())
                    .current_dir(dir.path());
                c
            },
            |port| http_request(port, "GET", "/moto-api/", &[], b"").0 == 200,
        );
        MotoServer {
            port,
            url: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    /// Creates a bucket (moto takes the unsigned request).
    pub fn create_bucket(&self, name: &str) {
        let (status, body) = http_request(self.port, "PUT", &format!("/{name}"), &[], b"");
        assert_eq!(status, 200, "create bucket {name}: {body}");
    }

    /// Stores an object as it is (unsigned).
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) {
        let (status, text) = http_request(self.port, "PUT", &format!("/{bucket}/{key}"), &[], body);
        assert_eq!(status, 200, "put {bucket}/{key}: {text}");
    }

    /// An object as stored (read with boto3, signed as any client would), `None` if
    /// there is none.
    pub fn get_object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let script = format!(
            "import sys, boto3, botocore\n\
             s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             try:\n    body = s3.get_object(Bucket='{bucket}', Key='{key}')['Body'].read()\n\
             except botocore.exceptions.ClientError:\n    sys.exit(0)\n\
             sys.stdout.buffer.write(b'1' + body)\n",
            self.url
        );
        let out = python(&script, b"");
        out.split_first().map(|(_, body)| body.to_vec())
    }

    /// `nbexec` with the standard AWS environment pointed at this server.
    pub fn nbexec(&self) -> Command {
        let mut cmd = nbexec();
        self.s3_env(&mut cmd);
        cmd
    }

    pub fn s3_env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("AWS_ENDPOINT_URL", &self.url)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The requests of this method on this path (query strings aside) so far.
    pub fn requests(&self, method: &str, path: &str) -> usize {
        let exact = format!("{method} {path} HTTP/");
        let query = format!("{method} {path}?");
        self.log_text()
            .lines()
            .filter(|l| l.contains(&exact) || l.contains(&query))
            .count()
    }

    /// Kills the server (SIGKILL to its process group).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A small WebDAV-less HTTP object server on a free loopback port: `PUT` stores a
/// body, `GET` returns it (404 if none), `HEAD` says whether it is there. It counts
/// the requests by method. Stops when dropped.
pub struct HttpObjects {
    pub port: u16,
    pub objects: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HttpObjects {
    pub fn start() -> HttpObjects {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpObjects {
            port,
            objects: Default::default(),
            log: Default::default(),
            stop: Default::default(),
        };
        let (objects, log, stop) = (
            server.objects.clone(),
            server.log.clone(),
            server.stop.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                let mut reader = BufReader::new(stream);
                // One request per connection; the answer says `Connection: close`.
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (
                    parts.next().unwrap_or("").to_owned(),
                    parts.next().unwrap_or("").to_owned(),
                );
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                log.lock().unwrap().push(format!("{method} {path}"));
                let (status, reply) = match method.as_str() {
                    "PUT" => {
                        objects.lock().unwrap().insert(path, body);
                        ("201 Created", Vec::new())
                    }
                    "GET" | "HEAD" => match objects.lock().unwrap().get(&path) {
                        Some(b) => ("200 OK", b.clone()),
                        None => ("404 Not Found", b"not here".to_vec()),
                    },
                    _ => ("405 Method Not Allowed", Vec::new()),
                };
                let mut stream = reader.into_inner();
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    reply.len()
                );
                let _ = stream.write_all(head.as_bytes());
                if method != "HEAD" {
                    let _ = stream.write_all(&reply);
                }
            }
        });
        server
    }

    pub fn count(&self, method: &str) -> usize {
        let prefix = format!("{method} ");
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .count()
    }
}

impl Drop for HttpObjects {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A Jupyter server (`jupyter-server` from the project's environment) on a free
/// loopback port with a token, its root a temporary directory; killed when dropped.
pub struct JupyterServer {
    pub port: u16,
    pub token: String,
    pub root: tempfile::TempDir,
    child: Option<std::process::Child>,
    log: PathBuf,
}

impl JupyterServer {
    pub fn start() -> JupyterServer {
        let program = venv().join("bin/jupyter-server");
        assert!(
            program.exists(),
            "no jupyter-server in {}: run scripts/venv.sh first (scripts/test.sh does)",
            venv().display()
        );
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join(".state");
        std::fs::create_dir_all(&state).unwrap();
        let log = state.join("server.log");
        static SERVERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("tok{}x{n}", std::process::id());
        let auth = format!("token {token}");
        let (port, child) = start_on_free_port(
            "jupyter-server",
            &log,
            |port| {
                let mut c = Command::new(&program);
                c.arg("--ServerApp.ip=127.0.0.1")
                    .arg(format!("--ServerApp.port={port}"))
                    .arg("--ServerApp.port_retries=0")
                    .arg(format!("--IdentityProvider.token={token}"))
                    .arg(format!("--ServerApp.root_dir={}", root.path().display()))
                    .arg("--ServerApp.open_browser=False")
                    .arg("--ServerApp.allow_root=True")
                    .env("JUPYTER_RUNTIME_DIR", state.join("runtime"))
                    .env("JUPYTER_DATA_DIR", state.join("data"))
                    .env("JUPYTER_CONFIG_DIR", state.join("config"))
                    .env_remove("JUPYTER_TOKEN");
                c
            },
            |port| {
                http_request(
                    port,
                    "GET",
                    "/api/contents",
                    &[("Authorization", &auth)],
                    b"",
                )
                .0 == 200
            },
        );
        JupyterServer {
            port,
            token,
            root,
            child: Some(child),
            log,
        }
    }
}

impl Drop for JupyterServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

/// The tests' HTTP client. The `remote` feature builds reqwest with rustls but no
/// crypto provider of its own (the project's one provider, ring, is installed by
/// whoever builds a client), so this installs ring first, as nbexec itself does.
pub fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("an HTTP client")
}
