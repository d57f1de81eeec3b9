//! Writing notebooks so that a reader never sees half a file.
//!
//! A regular file is replaced atomically: a temporary file next to it, flushed, then
//! renamed over it. A symlink is written through: the file it points to is replaced
//! (its temporary file sits next to the target), the link stays. Devices and FIFOs
//! (`/dev/null`, a named pipe) are written straight into, as nothing can be renamed
//! over them. New files get the mode the umask allows; a replaced file keeps its mode.
//!
//! Temporary files carry the writing process's pid and start time in their names
//! (`.<name>.nbx<pid>-<start>.<random>.nbexec-tmp`), so the leftovers of a process
//! killed mid-write are recognised as such and removed by the next run that writes
//! in the same directory.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const TMP_SUFFIX: &str = ".nbexec-tmp";
const PROBE_PREFIX: &str = ".nbexec-probe.";

/// Writes `bytes` to `path`: atomically for a regular file (or a symlink to one),
/// straight into a device or FIFO.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let target = resolve_links(path)?;
    match fs::metadata(&target) {
        Ok(m) if m.is_dir() => Err(is_a_directory(path)),
        Ok(m) if !m.is_file() || is_magic(path) => write_direct(&target, bytes, m.is_file()),
        Ok(m) => replace(&target, bytes, Some(&m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => replace(&target, bytes, None),
        Err(e) => Err(e),
    }
}

/// A checkpoint of a run still going: written like [`write_atomic`], but only to a
/// regular file (or a new one). A FIFO or device gets the notebook once, at the end:
/// successive checkpoints would reach its reader as several notebooks end to end.
pub fn write_checkpoint(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if is_magic(path) {
        return Ok(());
    }
    match fs::metadata(resolve_links(path)?) {
        Ok(m) if !m.is_file() => Ok(()),
        _ => write_atomic(path, bytes),
    }
}

/// Writes `bytes` to a new private file in the temporary directory (mode 0600,
/// created exclusively, with an unpredictable name ending in `-<name>`): where an
/// executed notebook goes when its output path cannot be written.
pub fn write_fallback(name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let name: String = name
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    let mut tmp = tempfile::Builder::new()
        .prefix("nbexec-")
        .suffix(&format!("-{name}"))
        .rand_bytes(12)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(std::env::temp_dir())?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    let (_, path) = tmp.keep().map_err(|e| e.error)?;
    Ok(path)
}

/// Can the notebook be written to `path`? Checked before the kernel starts, so an
/// unwritable output (or one that is a directory) fails fast. Also removes the
/// temporary files that dead nbexec processes left in the output's directory.
pub fn check_writable(path: &Path) -> io::Result<()> {
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Err(is_a_directory(path));
    }
    let target = resolve_links(path)?;
    match fs::metadata(&target) {
        Ok(m) if m.is_dir() => return Err(is_a_directory(path)),
        Ok(m) if !m.is_file() || is_magic(path) => return writable_by_us(&target),
        _ => {}
    }
    let dir = parent_dir(&target);
    if !dir.exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("directory {} does not exist", dir.display()),
        ));
    }
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", dir.display()),
        ));
    }
    clean_stale(&dir);
    tempfile::Builder::new()
        .prefix(&format!("{PROBE_PREFIX}{}.", own_tag()))
        .tempfile_in(&dir)
        .map(drop)
}

/// Do `a` and `b` name the same file, however spelt (`x.ipynb`, `./x.ipynb`, through a
/// symlink)? A path that does not exist yet is compared by its canonical directory.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) {
        return ma.dev() == mb.dev() && ma.ino() == mb.ino();
    }
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// The absolute, symlink-free form of `path`, for a file that may not exist yet.
pub fn canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = fs::canonicalize(path) {
        return Some(p);
    }
    let name = path.file_name()?;
    let dir = fs::canonicalize(parent_dir(path)).ok()?;
    Some(dir.join(name))
}

/// Removes temporary files of dead nbexec processes in `dir`: only files whose name
/// says which process made them (pid and start time), owned by this user, whose
/// process is gone. Returns how many were removed.
pub fn clean_stale(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let uid = unsafe { libc::geteuid() };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((pid, start)) = parse_tag(name) else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_file() || meta.uid() != uid {
            continue;
        }
        if crate::jobs::process_start(pid).as_deref() == Some(start) {
            continue; // its process still runs
        }
        if fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// `(pid, start)` of a temporary or probe file name of ours.
fn parse_tag(name: &str) -> Option<(i64, &str)> {
    let tagged = if let Some(rest) = name.strip_suffix(TMP_SUFFIX) {
        // .<name>.nbx<pid>-<start>.<random>
        let mut parts = rest.rsplitn(3, '.');
        let _random = parts.next()?;
        let tag = parts.next()?;
        parts.next()?;
        tag
    } else if let Some(rest) = name.strip_prefix(PROBE_PREFIX) {
        // .nbexec-probe.nbx<pid>-<start>.<random>
        rest.split_once('.')?.0
    } else {
        return None;
    };
    let (pid, start) = tagged.strip_prefix("nbx")?.split_once('-')?;
    let pid: i64 = pid.parse().ok()?;
    (pid > 0 && !start.is_empty() && start.bytes().all(|b| b.is_ascii_digit()))
        .then_some((pid, start))
}

/// `nbx<pid>-<start time>` of this process.
fn own_tag() -> String {
    let pid = std::process::id() as i64;
    format!(
        "nbx{pid}-{}",
        crate::jobs::process_start(pid).unwrap_or_else(|| "0".into())
    )
}

/// Replaces the regular file `target` (or creates it) atomically.
fn replace(target: &Path, bytes: &[u8], old: Option<&fs::Metadata>) -> io::Result<()> {
    let dir = parent_dir(target);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "notebook".into());
    // Mode 0666 at creation: the umask decides, as for any new file.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.{}.", own_tag()))
        .suffix(TMP_SUFFIX)
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    if let Some(old) = old {
        // A replaced file keeps its mode (and, where allowed, its owner).
        let file = tmp.as_file();
        let _ = std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid()));
        file.set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777))?;
    }
    tmp.as_file().sync_data()?;
    tmp.persist(target).map_err(|e| e.error)?;
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes into a device, FIFO or `/dev/fd`-style path: no rename is possible there.
fn write_direct(path: &Path, bytes: &[u8], regular: bool) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(regular)
        .custom_flags(libc::O_NOCTTY)
        .open(path)?;
    file.write_all(bytes)?;
    file.flush()
}

fn writable_by_us(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: access(2) on a NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Paths under /dev and /proc are links the kernel makes up (`/dev/stderr`,
/// `/proc/self/fd/3`): written straight, never renamed over.
fn is_magic(path: &Path) -> bool {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    abs.starts_with("/dev") || abs.starts_with("/proc")
}

/// Follows `path` while it is a symlink (at most 40 links, as the kernel does).
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_owned();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                if is_magic(&p) {
                    return Ok(p);
                }
                let link = fs::read_link(&p)?;
                p = if link.is_absolute() {
                    link
                } else {
                    parent_dir(&p).join(link)
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: too many levels of symbolic links", path.display()),
    ))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn is_a_directory(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::IsADirectory,
        format!("{} is a directory; name a file to write", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_parsed_only_from_our_names() {
        assert_eq!(
            parse_tag(".out.ipynb.nbx123-4567.AbC12x.nbexec-tmp"),
            Some((123, "4567"))
        );
        assert_eq!(parse_tag(".nbexec-probe.nbx9-10.zzZ123"), Some((9, "10")));
        assert_eq!(parse_tag(".out.ipynb.AbC12x.nbexec-tmp"), None);
        assert_eq!(parse_tag("out.ipynb"), None);
        assert_eq!(parse_tag(".x.nbx0-1.r.nbexec-tmp"), None);
    }
}
