//! Output files: symlinks, devices, FIFOs, directories, permissions, leftovers.

mod common;

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use common::*;
use serde_json::{Value, json};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn simple(dir: &Path) -> std::path::PathBuf {
    write_nb(
        dir,
        "in.ipynb",
        &notebook(vec![code("x = 21\nprint(x * 2)", &[])]),
    )
}

/// Files in `dir` whose names contain `needle`.
fn files_with(dir: &Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(needle))
        .collect()
}

fn assert_executed(nb: &Value) {
    assert_eq!(
        stream_text(cell_with(nb, "x * 2"), "stdout"),
        "42\n",
        "{nb}"
    );
}

#[test]
fn an_output_symlink_is_written_through_to_its_target_and_stays_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp();
    let input = simple(dir.path());
    std::fs::create_dir(dir.path().join("real")).unwrap();
    let target = dir.path().join("real/target.ipynb");
    std::fs::write(&target, "old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.path().join("out.ipynb");
    std::os::unix::fs::symlink("real/target.ipynb", &link).unwrap();

    let out = run(&["run", input.to_str().unwrap(), link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the output symlink was replaced by a file"
    );
    assert_executed(&read_nb(&target));
    assert_eq!(mode_of(&target), 0o640, "the target's mode is kept");
    assert!(files_with(dir.path(), "nbexec").is_empty());
    assert!(files_with(&dir.path().join("real"), "nbexec").is_empty());
}

#[test]
fn in_place_on_a_symlinked_notebook_updates_the_target_and_keeps_the_link() {
    let dir = tmp();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    let target = write_nb(
        &dir.path().join("real"),
        "nb.ipynb",
        &notebook(vec![code("x = 21\nprint(x * 2)", &[])]),
    );
    let link = dir.path().join("nb.ipynb");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let out = run(&["run", link.to_str().unwrap(), "--in-place"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_executed(&read_nb(&target));
}

#[test]
fn a_fifo_output_is_written_into_once_and_stays_a_fifo() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tmp();
    // Long enough for checkpoints, which must not reach the FIFO: its reader would
    // get several notebooks end to end.
    let input = write_nb(
        dir.path(),
        "slow.ipynb",
        &notebook(vec![
            code("import time\ntime.sleep(1)", &[]),
            code("time.sleep(1)", &[]),
            code("x = 21\nprint(x * 2)", &[]),
        ]),
    );
    let fifo = dir.path().join("out.pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Held open read-write and non-blocking: opening it never waits, and reading
    // cannot hang even if nothing is ever written into the FIFO.
    let mut pipe = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut child = nbexec()
        .args(["run", input.to_str().unwrap(), fifo.to_str().unwrap()])
        .args(["--autosave-seconds", "0.2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 65536];
    let status = loop {
        let exited = child.try_wait().unwrap();
        match pipe.read(&mut chunk) {
            Ok(n) if n > 0 => {
                bytes.extend_from_slice(&chunk[..n]);
                continue;
            }
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => panic!("{e}"),
            _ => {}
        }
        if let Some(status) = exited {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the run did not end");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO was replaced"
    );
    let nb: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
    assert_executed(&nb);
}

#[test]
fn a_character_device_output_is_written_into_and_not_replaced() {
    // A null device of our own (mknod needs root; elsewhere /dev/null itself is safe,
    // as nobody but root could replace it).
    let dir = tmp();
    let input = simple(dir.path());
    let own = dir.path().join("null");
    let c = std::ffi::CString::new(own.to_str().unwrap()).unwrap();
    let dev = if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) } == 0
    {
        own
    } else {
        "/dev/null".into()
    };
    let out = run(&["run", input.to_str().unwrap(), dev.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        std::fs::metadata(&dev)
            .unwrap()
            .file_type()
            .is_char_device(),
        "{} was replaced by a regular file",
        dev.display()
    );
    assert!(files_with(dir.path(), "nbexec").is_empty());
}

#[test]
fn dev_stdout_is_standard_output_like_a_dash() {
    let dir = tmp();
    let input = simple(dir.path());
    let out = run(&["run", input.to_str().unwrap(), "/dev/stdout"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_executed(&nb);
    assert!(
        std::fs::symlink_metadata("/dev/stdout")
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn an_output_that_is_a_directory_is_refused_before_any_kernel_with_exit_2() {
    let dir = tmp();
    // A kernel that does not exist: had the kernel been looked for first, the error
    // would be about it.
    let mut nb = notebook(vec![code("1", &[])]);
    nb["metadata"]["kernelspec"]["name"] = json!("no-such-kernel-xyz");
    let input = write_nb(dir.path(), "in.ipynb", &nb);
    let outdir = dir.path().join("outdir");
    std::fs::create_dir(&outdir).unwrap();
    for target in [
        outdir.to_str().unwrap().to_owned(),
        format!("{}/", dir.path().join("newdir").display()),
    ] {
        let out = run(&["run", input.to_str().unwrap(), &target]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{target}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains("is a directory"), "{err}");
        assert!(!err.contains("no-such-kernel"), "{err}");
    }
    assert_eq!(std::fs::read_dir(&outdir).unwrap().count(), 0);
}

#[test]
fn new_outputs_follow_the_umask_and_replaced_ones_keep_their_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp();
    let input = simple(dir.path());
    for (mask, want) in [(0o077, 0o600), (0o022, 0o644), (0o002, 0o664)] {
        let output = dir.path().join(format!("out-{mask:o}.ipynb"));
        let out = with_umask(&mut nbexec(), mask)
            .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(mode_of(&output), want, "umask {mask:o}");
    }
    let kept = dir.path().join("kept.ipynb");
    std::fs::write(&kept, "old").unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o604)).unwrap();
    let out = with_umask(&mut nbexec(), 0o077)
        .args(["run", input.to_str().unwrap(), kept.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(mode_of(&kept), 0o604);
    assert_executed(&read_nb(&kept));
}

#[test]
fn the_state_dir_database_and_logs_are_private_whatever_the_umask() {
    let dir = tmp();
    let input = simple(dir.path());
    let state = dir.path().join("state");
    let output = dir.path().join("out.ipynb");
    let out = with_umask(&mut nbexec(), 0o022)
        .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
        .arg("--detach")
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = serde_json::from_str::<Value>(&stdout(&out)).unwrap()["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let wait = nbexec()
        .args(["jobs", "wait", &id, "--timeout", "60", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(wait.status.code(), Some(0), "{}", stderr(&wait));
    assert_eq!(mode_of(&state), 0o700);
    assert_eq!(mode_of(&state.join("logs")), 0o700);
    assert_eq!(mode_of(&state.join(format!("logs/{id}.log"))), 0o600);
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode_of(&path), 0o600, "{}", path.display());
        }
    }
    assert!(state.join("jobs.sqlite3").exists());
    // The output notebook is not private: it follows the umask.
    assert_eq!(mode_of(&output), 0o644);
}

#[test]
fn a_failed_save_goes_to_a_private_unpredictable_fallback_file() {
    let dir = tmp();
    let outdir = dir.path().join("gone");
    std::fs::create_dir(&outdir).unwrap();
    let output = outdir.join("out.ipynb");
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code(
            &format!(
                "import shutil\nshutil.rmtree({:?})",
                outdir.to_str().unwrap()
            ),
            &[],
        )]),
    );
    let out = with_umask(&mut nbexec(), 0o022)
        .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
        .arg("--autosave-seconds")
        .arg("0")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let fallback = err
        .split("it was written to ")
        .nth(1)
        .and_then(|rest| rest.split(" instead").next())
        .unwrap_or_else(|| panic!("no fallback named: {err}"));
    let fallback = std::path::PathBuf::from(fallback);
    let _cleanup = Cleanup(fallback.clone());
    assert_eq!(mode_of(&fallback), 0o600);
    let name = fallback.file_name().unwrap().to_str().unwrap();
    assert!(name.ends_with("-out.ipynb"), "{name}");
    let middle = name
        .strip_prefix("nbexec-")
        .and_then(|n| n.strip_suffix("-out.ipynb"))
        .unwrap_or_else(|| panic!("{name}"));
    assert!(
        !middle.bytes().all(|b| b.is_ascii_digit()),
        "{name}: a pid-only name can be guessed"
    );
    assert!(read_nb(&fallback)["cells"].is_array());
}

/// Removes a file when dropped.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn leftovers_of_dead_nbexec_processes_are_cleaned_and_others_kept() {
    let dir = tmp();
    let input = simple(dir.path());
    // A pid that cannot be running: beyond the kernel's pid limit.
    let dead_pid = 1u64 << 23;
    let me = std::process::id();
    let my_start = process_start(me);
    let stale = [
        format!(".out.ipynb.nbx{dead_pid}-12345.AbCdEf.nbexec-tmp"),
        format!(".nbexec-probe.nbx{dead_pid}-12345.XyZ123"),
        // Our pid, but another start time: the pid was reused.
        format!(".out.ipynb.nbx{me}-1.QwErTy.nbexec-tmp"),
    ];
    let kept = [
        // Whose process cannot be told: not ours to remove.
        ".out.ipynb.AbCdEf.nbexec-tmp".to_owned(),
        // Of a live process.
        format!(".out.ipynb.nbx{me}-{my_start}.ZxCvBn.nbexec-tmp"),
        "notes.nbexec-tmp.txt".to_owned(),
    ];
    for name in stale.iter().chain(&kept) {
        std::fs::write(dir.path().join(name), "x").unwrap();
    }
    let output = dir.path().join("out.ipynb");
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for name in &stale {
        assert!(!dir.path().join(name).exists(), "{name} left behind");
    }
    for name in &kept {
        assert!(dir.path().join(name).exists(), "{name} removed");
    }
}
