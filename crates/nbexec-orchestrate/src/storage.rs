//! Paths that may be URLs: reading inputs whole, checking and staging outputs.
//!
//! A remote output is written locally first (a private file in the temporary
//! directory), uploaded after each autosave checkpoint and once at the end, never per
//! cell. A final upload that still fails after its retries leaves that local file in
//! place, and the error names it (the same rule as a full disk).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nbexec_runner::{OutputTarget, RunError, RunOptions, RunResult};
use nbexec_storage::{Location, RemoteUrl, Retry, WriteMode};
use serde_json::Value;
use tokio::sync::Notify;

use crate::Error;

/// `Some(url)` when `path` is a URL of a remote store (`None`: a local path).
pub(crate) fn remote_url(path: &Path) -> Result<Option<RemoteUrl>, Error> {
    let Some(text) = path.to_str() else {
        return Ok(None);
    };
    match nbexec_storage::parse(text)? {
        Location::Remote(url) => Ok(Some(url)),
        _ => Ok(None),
    }
}

/// Is `path` a URL (`scheme://…`) rather than a local path? (`file://` URLs count as
/// local.)
pub fn is_url(path: &Path) -> bool {
    matches!(remote_url(path), Ok(Some(_)) | Err(_))
}

/// A `file://` URL as the path it names; anything else unchanged.
pub fn local_path(path: &Path) -> PathBuf {
    match path.to_str().map(nbexec_storage::parse) {
        Some(Ok(Location::Local(p))) => p,
        _ => path.to_owned(),
    }
}

/// The whole of a file or a remote object. The error names it and the store's reason.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, Error> {
    match remote_url(path)? {
        Some(url) => Ok(nbexec_storage::blocking::read(&url)?),
        None => std::fs::read(local_path(path)).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// [`read_bytes`] as UTF-8 text (parameters files, batch files).
pub fn read_text(path: &Path) -> Result<String, Error> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|_| Error::Read {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ),
    })
}

/// Writes a whole file or remote object (a report, say): atomically for a local
/// file; uploaded with retries for a URL.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_bytes_as(path, bytes, WriteMode::Overwrite)
}

/// [`write_bytes`] in `mode`: for a URL, `WriteMode::Create` is the store's
/// conditional create. A local file is written as by [`write_bytes`]; its
/// `--no-overwrite` is [`check_output`]'s, as for a run's output.
pub(crate) fn write_bytes_as(path: &Path, bytes: &[u8], mode: WriteMode) -> Result<(), Error> {
    match remote_url(path)? {
        Some(url) => Ok(nbexec_storage::blocking::write_with_retry(
            &url,
            bytes,
            mode,
            Retry::default(),
        )?),
        None => {
            let path = local_path(path);
            nbexec_runner::save::write_atomic(&path, bytes).map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })
        }
    }
}

/// Checked before a kernel starts: can the output be written? For a URL: the
/// feature is built in, the bucket or container exists, the credentials are taken,
/// and with `no_overwrite` nothing is there yet.
pub(crate) fn check_output(path: &Path, no_overwrite: bool) -> Result<(), Error> {
    let mode = write_mode(no_overwrite);
    if let Some(url) = remote_url(path)? {
        nbexec_storage::check_supported(&url)?;
        return Ok(nbexec_storage::blocking::check_writable(&url, mode)?);
    }
    let path = &local_path(path);
    if no_overwrite && std::fs::symlink_metadata(path).is_ok() {
        return Err(Error::Usage(format!(
            "{}: already exists (--no-overwrite)",
            path.display()
        )));
    }
    nbexec_runner::save::check_writable(path).map_err(|source| {
        Error::Run(RunError::Output {
            path: path.to_owned(),
            source,
        })
    })
}

/// Checked before a kernel starts: can a report be written to `path` (a local file,
/// or an object in a store that is there and takes the credentials)?
pub fn check_report(path: &Path) -> Result<(), Error> {
    if let Some(url) = remote_url(path)? {
        nbexec_storage::check_supported(&url)?;
        return Ok(nbexec_storage::blocking::check_writable(
            &url,
            WriteMode::Overwrite,
        )?);
    }
    nbexec_runner::save::check_writable(&local_path(path))
        .map_err(|e| Error::Usage(format!("cannot write the report {}: {e}", path.display())))
}

/// `--no-overwrite` as a write mode.
pub(crate) fn write_mode(no_overwrite: bool) -> WriteMode {
    if no_overwrite {
        WriteMode::Create
    } else {
        WriteMode::Overwrite
    }
}

/// A remote output while its run goes: the local file the runner writes, and the
/// task that uploads each checkpoint.
pub(crate) struct Upload {
    url: RemoteUrl,
    staging: PathBuf,
    mode: WriteMode,
    /// A checkpoint upload created the object (with `--no-overwrite`).
    created: Arc<AtomicBool>,
    checkpoints: tokio::task::JoinHandle<()>,
    notify: Arc<Notify>,
    stop: Arc<AtomicBool>,
}

/// When the run's output is a URL: points the runner at a private local file,
/// records `metadata.nbexec.output_url`, and starts uploading checkpoints as they
/// are saved. `None` for any other output. Must be called on a tokio runtime.
pub(crate) fn stage(
    options: &mut RunOptions,
    no_overwrite: bool,
) -> Result<Option<Upload>, RunError> {
    let OutputTarget::File(path) = &options.output else {
        return Ok(None);
    };
    let url = match remote_url(path) {
        Ok(Some(url)) => url,
        _ => return Ok(None),
    };
    let name = url.file_name().unwrap_or("output.ipynb").to_owned();
    // Created now (0600, exclusively, unpredictable name), replaced by each save.
    let staging =
        nbexec_runner::save::write_fallback(&name, b"").map_err(|source| RunError::Output {
            path: path.clone(),
            source,
        })?;
    options
        .extra_metadata
        .insert("output_url".into(), Value::from(url.as_str().to_owned()));
    // papermill's `output_path` is where the notebook goes, not the local stage.
    options.output_path = Some(url.as_str().to_owned());
    options.output = OutputTarget::File(staging.clone());
    let notify = Arc::new(Notify::new());
    options.checkpoint_saved = Some(notify.clone());
    let mode = write_mode(no_overwrite);
    let created = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let checkpoints = tokio::spawn(upload_checkpoints(
        url.clone(),
        staging.clone(),
        mode,
        notify.clone(),
        created.clone(),
        stop.clone(),
    ));
    Ok(Some(Upload {
        url,
        staging,
        mode,
        created,
        checkpoints,
        notify,
        stop,
    }))
}

/// Uploads the local file after each checkpoint, the latest one only if several
/// came while an upload was going. A failed checkpoint upload is not fatal: the final
/// upload decides. With `--no-overwrite`, the first upload is the conditional create
/// and later ones overwrite what this run created.
async fn upload_checkpoints(
    url: RemoteUrl,
    staging: PathBuf,
    mode: WriteMode,
    notify: Arc<Notify>,
    created: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    loop {
        notify.notified().await;
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(bytes) = tokio::fs::read(&staging).await else {
            continue;
        };
        let mode = if created.load(Ordering::SeqCst) {
            WriteMode::Overwrite
        } else {
            mode
        };
        match nbexec_storage::write(&url, &bytes, mode).await {
            Ok(()) if mode == WriteMode::Create => created.store(true, Ordering::SeqCst),
            Ok(()) => {}
            Err(nbexec_storage::Error::AlreadyExists { .. }) => return,
            Err(_) => {}
        }
    }
}

/// After the run: stops the checkpoint uploads, uploads the final notebook (retried
/// with backoff) and removes the local file. If the upload still fails, the local
/// file stays and the error names it.
pub(crate) async fn finish(
    upload: Option<Upload>,
    result: Result<RunResult, RunError>,
) -> Result<RunResult, RunError> {
    let Some(up) = upload else {
        return result;
    };
    // An upload under way is let finish (it may be the one that created the object).
    up.stop.store(true, Ordering::SeqCst);
    up.notify.notify_one();
    let _ = up.checkpoints.await;
    // A final write over what this run's own checkpoints created is no overwrite.
    let mode = if up.created.load(Ordering::SeqCst) {
        WriteMode::Overwrite
    } else {
        up.mode
    };
    let mut done = match result {
        Ok(done) => done,
        Err(e) => {
            // Nothing worth uploading was saved (the kernel never started, say): the
            // notebook written on that path, if any, is uploaded all the same.
            if let Ok(bytes) = std::fs::read(&up.staging)
                && !bytes.is_empty()
                && nbexec_storage::write_with_retry(&up.url, &bytes, mode, Retry::default())
                    .await
                    .is_ok()
            {
                let _ = std::fs::remove_file(&up.staging);
            } else if std::fs::metadata(&up.staging).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(&up.staging);
            }
            return Err(e);
        }
    };
    let bytes = match std::fs::read(&up.staging) {
        Ok(b) => b,
        Err(source) => {
            return Err(RunError::Save {
                path: PathBuf::from(up.url.as_str()),
                source,
                outcome: Box::new(done.outcome),
            });
        }
    };
    match nbexec_storage::write_with_retry(&up.url, &bytes, mode, Retry::default()).await {
        Ok(()) => {
            let _ = std::fs::remove_file(&up.staging);
            done.saved_to = Some(PathBuf::from(up.url.as_str()));
            Ok(done)
        }
        Err(e) => Err(RunError::SavedToFallback {
            path: PathBuf::from(up.url.as_str()),
            source: std::io::Error::other(reason(&e, &up.url)),
            fallback: up.staging,
            outcome: Box::new(done.outcome),
        }),
    }
}

/// The storage error without the URL in front (the run error names it already).
fn reason(e: &nbexec_storage::Error, url: &RemoteUrl) -> String {
    let text = e.to_string();
    text.strip_prefix(&format!("{url}: "))
        .map(str::to_owned)
        .unwrap_or(text)
}
