//! Connection files: where they live, what they say, and the endpoints in them.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::KernelError;

/// Which ZeroMQ transport the kernel's sockets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Unix domain sockets in a private directory: no ports, so parallel runs
    /// cannot collide, and nothing is reachable from the network. The default.
    #[default]
    Ipc,
    /// TCP on 127.0.0.1 with ports picked by the OS.
    Tcp,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Ipc => "ipc",
            Transport::Tcp => "tcp",
        }
    }
}

/// Longest path a Unix socket address can hold (`sun_path` is 108 bytes with the NUL).
const SUN_PATH_MAX: usize = 107;

/// The contents of a Jupyter connection file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// `tcp` or `ipc`.
    pub transport: Transport,
    /// The TCP address, or for IPC the path prefix (`<ip>-<port>` is the socket).
    pub ip: String,
    /// The HMAC key (the text in the file; its UTF-8 bytes are the key).
    pub key: String,
    /// Port (or IPC suffix) of the shell channel.
    pub shell_port: u16,
    /// Port of the IOPub channel.
    pub iopub_port: u16,
    /// Port of the stdin channel.
    pub stdin_port: u16,
    /// Port of the control channel.
    pub control_port: u16,
    /// Port of the heartbeat channel.
    pub hb_port: u16,
}

impl ConnectionInfo {
    /// Reads a connection file written by someone else (e.g. `jupyter kernel`).
    /// Refuses files with CurveZMQ keys: zmq.rs cannot speak CURVE, and a
    /// kernel that demands it would silently never answer.
    pub fn read(path: &Path) -> Result<ConnectionInfo, KernelError> {
        let text = std::fs::read_to_string(path).map_err(|source| KernelError::File {
            action: "cannot read connection file",
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |what: &str| {
            KernelError::Protocol(format!("connection file {}: {what}", path.display()))
        };
        let json: Value = serde_json::from_str(&text).map_err(|e| invalid(&e.to_string()))?;
        let curve = ["curve_publickey", "curve_secretkey", "curve_serverkey"]
            .iter()
            .any(|k| json.get(*k).is_some_and(|v| !v.is_null()));
        if curve {
            return Err(KernelError::CurveRequired {
                path: path.to_path_buf(),
            });
        }
        let scheme = json
            .get("signature_scheme")
            .and_then(Value::as_str)
            .unwrap_or("hmac-sha256");
        if scheme != "hmac-sha256" {
            return Err(invalid(&format!("unsupported signature_scheme {scheme:?}")));
        }
        let transport = match json.get("transport").and_then(Value::as_str) {
            None | Some("tcp") => Transport::Tcp,
            Some("ipc") => Transport::Ipc,
            Some(other) => return Err(invalid(&format!("unknown transport {other:?}"))),
        };
        let port = |k: &str| -> Result<u16, KernelError> {
            json.get(k)
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid(&format!("{k} missing or not a port")))
        };
        Ok(ConnectionInfo {
            transport,
            ip: json
                .get("ip")
                .and_then(Value::as_str)
                .unwrap_or("127.0.0.1")
                .to_owned(),
            key: json
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            shell_port: port("shell_port")?,
            iopub_port: port("iopub_port")?,
            stdin_port: port("stdin_port")?,
            control_port: port("control_port")?,
            hb_port: port("hb_port")?,
        })
    }

    /// The ZeroMQ endpoint for a port, as ipykernel binds it.
    pub fn endpoint(&self, port: u16) -> String {
        match self.transport {
            Transport::Tcp => format!("tcp://{}:{port}", self.ip),
            Transport::Ipc => format!("ipc://{}-{port}", self.ip),
        }
    }

    /// For IPC, the socket files the kernel creates (to clean up after a
    /// killed kernel, which cannot remove them itself).
    pub(crate) fn ipc_paths(&self) -> Vec<PathBuf> {
        match self.transport {
            Transport::Tcp => Vec::new(),
            Transport::Ipc => self
                .ports()
                .iter()
                .map(|p| PathBuf::from(format!("{}-{p}", self.ip)))
                .collect(),
        }
    }

    fn ports(&self) -> [u16; 5] {
        [
            self.shell_port,
            self.iopub_port,
            self.stdin_port,
            self.control_port,
            self.hb_port,
        ]
    }

    fn to_json(&self, kernel_name: &str) -> Value {
        let mut m = Map::new();
        m.insert("shell_port".into(), self.shell_port.into());
        m.insert("iopub_port".into(), self.iopub_port.into());
        m.insert("stdin_port".into(), self.stdin_port.into());
        m.insert("control_port".into(), self.control_port.into());
        m.insert("hb_port".into(), self.hb_port.into());
        m.insert("ip".into(), self.ip.as_str().into());
        m.insert("key".into(), self.key.as_str().into());
        m.insert("transport".into(), self.transport.as_str().into());
        m.insert("signature_scheme".into(), "hmac-sha256".into());
        m.insert("kernel_name".into(), kernel_name.into());
        Value::Object(m)
    }
}

/// The directory for connection files: `$JUPYTER_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/jupyter`, else `~/.local/share/jupyter/runtime`.
pub fn default_runtime_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = var("JUPYTER_RUNTIME_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = var("XDG_RUNTIME_DIR") {
        return PathBuf::from(d).join("jupyter");
    }
    match var("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/jupyter/runtime"),
        // Not `/tmp/.local/...`, which every user without a HOME would share:
        // a directory of our own, checked by `ensure_private_dir` when used.
        None => std::env::temp_dir().join(format!("nbexec-{}", nix::unistd::geteuid())),
    }
}

/// Creates `dir` (and parents) if needed, a directory we create being 0700,
/// and checks that it is safe to keep secrets in: a directory owned by this
/// user that nobody else can write to. Otherwise whoever owns or can write it
/// could read connection keys or job records, or replace a kernel's sockets.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    let uid = nix::unistd::geteuid().as_raw();
    let problem = if !meta.is_dir() {
        Some("is not a directory (a symbolic link?)".to_owned())
    } else if meta.uid() != uid {
        Some(format!(
            "is owned by uid {}, not by this user (uid {uid})",
            meta.uid()
        ))
    } else if meta.permissions().mode() & 0o022 != 0 {
        Some(format!(
            "can be written by other users (mode {:o})",
            meta.permissions().mode() & 0o777
        ))
    } else {
        None
    };
    match problem {
        Some(p) => Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{p}; refusing to use it"),
        )),
        None => Ok(()),
    }
}

fn ensure_runtime_dir(dir: &Path) -> Result<(), KernelError> {
    ensure_private_dir(dir).map_err(|source| KernelError::File {
        action: "cannot use runtime directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// A fallback directory for IPC sockets when the runtime dir's path is too
/// long for `sun_path`: `/tmp/nbexec-<uid>`, which must be ours and private,
/// since anyone could have created it first.
fn short_socket_dir() -> Result<PathBuf, KernelError> {
    let uid = nix::unistd::geteuid().as_raw();
    let dir = PathBuf::from(format!("/tmp/nbexec-{uid}"));
    let err = |source| KernelError::File {
        action: "cannot use IPC socket directory",
        path: dir.clone(),
        source,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(e)),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(err)?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(err(std::io::Error::other(
            "exists but is not a private directory owned by this user",
        )));
    }
    Ok(dir)
}

/// Connection files we write: `kernel-nbexec-<pid>-<start>-<id>.json`.
const FILE_PREFIX: &str = "kernel-nbexec-";
/// IPC socket files in the runtime dir: `nbexec-<pid>-<start>-<id>-<n>`.
const SOCKET_PREFIX: &str = "nbexec-";
/// IPC socket files in the short socket dir: `k-<pid>-<start>-<id>-<n>`.
const SHORT_SOCKET_PREFIX: &str = "k-";

/// `<pid>-<start time>` of this process. The start time (in clock ticks since
/// boot) tells a reused pid from the process that named the files. `None`
/// where there is no `/proc` (then no file is ever taken for stale).
fn owner_tag() -> Option<String> {
    let pid = std::process::id();
    Some(format!("{pid}-{}", process_start(pid)?))
}

/// A process's start time from `/proc/<pid>/stat`, `None` if there is no such
/// process (or no `/proc`).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may itself contain spaces and ')'.
    let after = stat.rsplit_once(')')?.1;
    // Fields after the name start at field 3 (state); starttime is field 22.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Removes files that an nbexec process which is no longer running left in
/// `dir` (connection files and IPC sockets, when it was SIGKILLed). Only names
/// of the forms above are considered, and only when their pid is gone or now
/// belongs to a process started at another time; `own` is never touched.
fn remove_stale(dir: &Path, own: Option<&str>) {
    if !Path::new("/proc/self/stat").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let rest = [FILE_PREFIX, SOCKET_PREFIX, SHORT_SOCKET_PREFIX]
            .iter()
            .find_map(|p| name.strip_prefix(p));
        let Some(rest) = rest else { continue };
        let mut parts = rest.splitn(3, '-');
        let (Some(pid), Some(start), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
            continue;
        };
        if own == Some(&format!("{pid}-{start}")) || process_start(pid) == Some(start) {
            continue;
        }
        // Only regular files and sockets we own; never a directory or a link.
        let ours = entry.metadata().is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            let t = m.file_type();
            m.uid() == nix::unistd::geteuid().as_raw() && (t.is_file() || t.is_socket())
        });
        if ours {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Everything the kernel needs before it starts; removes its files on drop.
pub(crate) struct ConnectionFile {
    pub info: ConnectionInfo,
    pub path: PathBuf,
    /// Whether we remove the IPC socket files too (only for kernels we started).
    owned_sockets: bool,
}

impl ConnectionFile {
    /// Picks endpoints and a fresh random key and writes the file (mode 0600)
    /// into `runtime_dir` (created 0700 if missing).
    pub(crate) fn create(
        runtime_dir: &Path,
        transport: Transport,
        kernel_name: &str,
    ) -> Result<ConnectionFile, KernelError> {
        ensure_runtime_dir(runtime_dir)?;
        let owner = owner_tag();
        remove_stale(runtime_dir, owner.as_deref());
        let id = uuid::Uuid::new_v4().simple().to_string();
        // Named after this process (pid and start time) when it can be, so
        // that a later run can tell the files of an nbexec that was killed
        // without cleaning up from those of one still running.
        let tag = owner.map_or_else(String::new, |o| format!("{o}-"));
        let key = random_key()?;
        let info = match transport {
            Transport::Tcp => {
                let ports = free_tcp_ports()?;
                ConnectionInfo {
                    transport,
                    ip: "127.0.0.1".into(),
                    key,
                    shell_port: ports[0],
                    iopub_port: ports[1],
                    stdin_port: ports[2],
                    control_port: ports[3],
                    hb_port: ports[4],
                }
            }
            Transport::Ipc => {
                let short = &id[..12];
                let mut prefix = runtime_dir.join(format!("{SOCKET_PREFIX}{tag}{short}"));
                // `<prefix>-5` must fit in sun_path.
                if prefix.as_os_str().len() + 2 > SUN_PATH_MAX {
                    let dir = short_socket_dir()?;
                    remove_stale(&dir, None);
                    prefix = dir.join(format!("{SHORT_SOCKET_PREFIX}{tag}{short}"));
                }
                ConnectionInfo {
                    transport,
                    ip: prefix.display().to_string(),
                    key,
                    shell_port: 1,
                    iopub_port: 2,
                    stdin_port: 3,
                    control_port: 4,
                    hb_port: 5,
                }
            }
        };
        let path = runtime_dir.join(format!("{FILE_PREFIX}{tag}{id}.json"));
        let write_err = |source| KernelError::File {
            action: "cannot write connection file",
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(write_err)?;
        let text = serde_json::to_vec_pretty(&info.to_json(kernel_name))
            .map_err(|e| write_err(std::io::Error::other(e)))?;
        let conn = ConnectionFile {
            info,
            path: path.clone(),
            owned_sockets: true,
        };
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(write_err)?;
        Ok(conn)
    }

    /// Wraps someone else's connection file: nothing is removed on drop.
    pub(crate) fn existing(path: &Path) -> Result<ConnectionFile, KernelError> {
        Ok(ConnectionFile {
            info: ConnectionInfo::read(path)?,
            path: path.to_path_buf(),
            owned_sockets: false,
        })
    }

    pub(crate) fn remove(&mut self) {
        if !self.owned_sockets {
            return;
        }
        let _ = std::fs::remove_file(&self.path);
        for p in self.info.ipc_paths() {
            let _ = std::fs::remove_file(p);
        }
        self.owned_sockets = false;
    }
}

impl Drop for ConnectionFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// 32 random bytes as 64 hex characters, from the OS's CSPRNG.
fn random_key() -> Result<String, KernelError> {
    let mut bytes = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom")?;
    std::io::Read::read_exact(&mut f, &mut bytes)?;
    Ok(crate::wire::hex(&bytes))
}

/// Five distinct ports the OS says are free right now. Another process can
/// take one before the kernel binds it; the launcher retries on that.
fn free_tcp_ports() -> Result<[u16; 5], KernelError> {
    let listeners = (0..5)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0u16; 5];
    for (slot, l) in ports.iter_mut().zip(&listeners) {
        *slot = l.local_addr()?.port();
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_file_is_private_and_has_a_fresh_64_hex_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = dir.path().join("rt");
        let a = ConnectionFile::create(&runtime, Transport::Ipc, "python3").expect("create");
        let b = ConnectionFile::create(&runtime, Transport::Ipc, "python3").expect("create");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&a.path), 0o600);
        assert_eq!(mode(&runtime), 0o700);
        assert_eq!(a.info.key.len(), 64);
        assert_ne!(a.info.key, b.info.key);
        assert_ne!(a.info.ip, b.info.ip);
        let read = ConnectionInfo::read(&a.path).expect("read back");
        assert_eq!(read, a.info);
        let p = a.path.clone();
        drop(a);
        assert!(!p.exists(), "connection file removed on drop");
    }

    #[test]
    fn ipc_paths_fall_back_to_a_short_directory_when_too_long() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = dir.path().join("x".repeat(100));
        let c = ConnectionFile::create(&runtime, Transport::Ipc, "k").expect("create");
        for p in c.info.ipc_paths() {
            assert!(p.as_os_str().len() <= SUN_PATH_MAX, "{}", p.display());
        }
        assert!(c.info.ip.starts_with("/tmp/nbexec-"));
    }

    #[test]
    fn tcp_ports_are_distinct() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = ConnectionFile::create(dir.path(), Transport::Tcp, "k").expect("create");
        let mut ports = c.info.ports().to_vec();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 5);
        assert_eq!(
            c.info.endpoint(c.info.shell_port),
            format!("tcp://127.0.0.1:{}", c.info.shell_port)
        );
    }

    #[test]
    fn a_connection_file_with_curve_keys_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("k.json");
        std::fs::write(
            &p,
            r#"{"shell_port":1,"iopub_port":2,"stdin_port":3,"control_port":4,"hb_port":5,
                "ip":"/tmp/x","key":"k","transport":"ipc","curve_publickey":"abc","curve_secretkey":"def"}"#,
        )
        .expect("write");
        assert!(matches!(
            ConnectionInfo::read(&p),
            Err(KernelError::CurveRequired { .. })
        ));
    }
}
