//! Bytes to and from where a notebook lives: a local path, a `file://` URL, an object
//! store (`s3://`, `gs://`, `az://`…), a plain `http(s)://` URL, or a Jupyter server's
//! Contents API (`jupyter+http(s)://host/api/contents/PATH`).
//!
//! This crate knows nothing of notebooks or kernels: bytes in, bytes out. Reads are
//! whole objects; writes are whole objects too, with an optional conditional create
//! (`--no-overwrite`) and retries with backoff. The object stores are the `object_store`
//! crate's (Apache Arrow), configured from the standard environment (`AWS_*`,
//! `GOOGLE_*`, `AZURE_*`), behind the `remote` feature; without it, a URL that needs it
//! is a one-line error that names the feature.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "remote")]
mod remote;

/// The cargo feature that brings the remote backends.
pub const FEATURE: &str = "remote";

/// Where a notebook (or a parameters file, a report, a batch file) is read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `-`: standard input or output.
    Stdio,
    /// A plain path or a `file://` URL.
    Local(PathBuf),
    /// Anything reached over the network.
    Remote(RemoteUrl),
}

/// A URL of a remote store, its scheme aliases resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    /// As the user wrote it (what messages and metadata show).
    original: String,
    /// What the backend is given: aliases resolved, `jupyter+` stripped.
    resolved: url::Url,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// S3, GCS, Azure, plain HTTP: the `object_store` crate.
    ObjectStore,
    /// A Jupyter server's Contents API.
    JupyterContents,
}

impl RemoteUrl {
    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The last segment of the URL's path (`out.ipynb` of `s3://b/dir/out.ipynb`).
    pub fn file_name(&self) -> Option<&str> {
        self.resolved
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|s| !s.is_empty())
    }

    /// Is this a plain HTTP(S) URL (raw GET/PUT, no conditional create)?
    pub fn is_plain_http(&self) -> bool {
        self.kind == Kind::ObjectStore && matches!(self.resolved.scheme(), "http" | "https")
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// How a write treats an object that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    #[default]
    Overwrite,
    /// Refuse when it exists (a conditional create where the store has one).
    Create,
}

/// Retries of a failing write: `attempts` in all, waiting `first_delay`, then twice
/// as long each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for Retry {
    /// Four attempts over about 3.5 s (0.5 + 1 + 2 s of waiting).
    fn default() -> Self {
        Retry {
            attempts: 4,
            first_delay: Duration::from_millis(500),
        }
    }
}

/// Why a read or a write failed. The text starts with the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(
        "{url}: unsupported URL scheme {scheme:?} (nbexec reads and writes s3://, gs://, az://, abfs(s)://, abs://, http(s)://, jupyter+http(s)://, file:// and plain paths)"
    )]
    UnsupportedScheme { url: String, scheme: String },
    #[error(
        "{url}: this nbexec was built without the `remote` feature, which {scheme}:// URLs need (cargo install nbexec --features remote)"
    )]
    FeatureMissing { url: String, scheme: String },
    #[error("{url}: invalid URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{url}: not found: {reason}")]
    NotFound { url: String, reason: String },
    #[error("{url}: already exists (--no-overwrite)")]
    AlreadyExists { url: String },
    #[error("{url}: access denied: {reason}")]
    Denied { url: String, reason: String },
    #[error("{url}: {reason}")]
    Other { url: String, reason: String },
}

impl Error {
    /// Is another attempt worth it (a network error, a server error), or is the
    /// answer final (missing, denied, exists, bad URL)?
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Other { .. })
    }
}

/// Does `s` look like a URL (`scheme://…`) rather than a path?
pub fn is_url(s: &str) -> bool {
    scheme_of(s).is_some()
}

fn scheme_of(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Reads where `s` points: `-`, a plain path, or a URL (aliases resolved: papermill's
/// `abs://account.blob.core.windows.net/container/blob`, `gcs://`).
pub fn parse(s: &str) -> Result<Location, Error> {
    if s == "-" {
        return Ok(Location::Stdio);
    }
    let Some(scheme) = scheme_of(s) else {
        return Ok(Location::Local(PathBuf::from(s)));
    };
    let scheme = scheme.to_ascii_lowercase();
    let invalid = |reason: String| Error::InvalidUrl {
        url: s.to_owned(),
        reason,
    };
    let rest = &s[scheme.len() + 3..];
    let (text, kind) = match scheme.as_str() {
        "file" => {
            let url = url::Url::parse(s).map_err(|e| invalid(e.to_string()))?;
            let path = url
                .to_file_path()
                .map_err(|()| invalid("not a local file path".into()))?;
            return Ok(Location::Local(path));
        }
        "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "adl" | "http" | "https" => {
            (s.to_owned(), Kind::ObjectStore)
        }
        "gcs" => (format!("gs://{rest}"), Kind::ObjectStore),
        // papermill's Azure Blob scheme: abs://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB
        "abs" => match rest.split_once('/') {
            Some((host, _)) if host.contains('.') => (format!("https://{rest}"), Kind::ObjectStore),
            _ => (format!("az://{rest}"), Kind::ObjectStore),
        },
        "jupyter+http" | "jupyter+https" => (
            format!("{}://{rest}", &scheme["jupyter+".len()..]),
            Kind::JupyterContents,
        ),
        _ => {
            return Err(Error::UnsupportedScheme {
                url: s.to_owned(),
                scheme,
            });
        }
    };
    let resolved = url::Url::parse(&text).map_err(|e| invalid(e.to_string()))?;
    if resolved.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host or bucket".into()));
    }
    if resolved.path().trim_matches('/').is_empty() {
        return Err(invalid("no object path after the host or bucket".into()));
    }
    if kind == Kind::JupyterContents && !resolved.path().contains("/api/contents/") {
        return Err(invalid(
            "a Jupyter Contents URL is jupyter+http(s)://HOST[:PORT]/[BASE/]api/contents/PATH"
                .into(),
        ));
    }
    Ok(Location::Remote(RemoteUrl {
        original: s.to_owned(),
        resolved,
        kind,
    }))
}

#[cfg(not(feature = "remote"))]
fn missing(url: &RemoteUrl) -> Error {
    Error::FeatureMissing {
        url: url.original.clone(),
        scheme: scheme_of(&url.original).unwrap_or_default().to_owned(),
    }
}

/// Can this build reach `url` at all? (Without the `remote` feature it cannot.)
pub fn check_supported(url: &RemoteUrl) -> Result<(), Error> {
    #[cfg(feature = "remote")]
    {
        let _ = url;
        Ok(())
    }
    #[cfg(not(feature = "remote"))]
    Err(missing(url))
}

/// Reads the whole object.
pub async fn read(url: &RemoteUrl) -> Result<Vec<u8>, Error> {
    #[cfg(feature = "remote")]
    return remote::read(url).await;
    #[cfg(not(feature = "remote"))]
    Err(missing(url))
}

/// Writes the whole object, once.
pub async fn write(url: &RemoteUrl, bytes: &[u8], mode: WriteMode) -> Result<(), Error> {
    #[cfg(feature = "remote")]
    return remote::write(url, bytes, mode).await;
    #[cfg(not(feature = "remote"))]
    {
        let _ = (bytes, mode);
        Err(missing(url))
    }
}

/// Checked before a run starts: can the object be written? A missing bucket or
/// container, bad credentials, or (with [`WriteMode::Create`]) an object that exists
/// already are errors; anything the check cannot tell passes (the write decides).
pub async fn check_writable(url: &RemoteUrl, mode: WriteMode) -> Result<(), Error> {
    #[cfg(feature = "remote")]
    return remote::check_writable(url, mode).await;
    #[cfg(not(feature = "remote"))]
    {
        let _ = mode;
        Err(missing(url))
    }
}

/// [`write`], retried with backoff while the error is transient.
pub async fn write_with_retry(
    url: &RemoteUrl,
    bytes: &[u8],
    mode: WriteMode,
    retry: Retry,
) -> Result<(), Error> {
    let mut delay = retry.first_delay;
    let mut attempt = 1;
    loop {
        match write(url, bytes, mode).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && attempt < retry.attempts.max(1) => {
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
                attempt += 1;
            }
            Err(e) if attempt > 1 => {
                return Err(Error::Other {
                    url: url.original.clone(),
                    reason: format!("{} (after {attempt} attempts)", reason_of(&e)),
                });
            }
            Err(e) => return Err(e),
        }
    }
}

/// The error's text without the URL in front.
fn reason_of(e: &Error) -> String {
    match e {
        Error::NotFound { reason, .. }
        | Error::Denied { reason, .. }
        | Error::Other { reason, .. }
        | Error::InvalidUrl { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// The same calls for synchronous callers: each runs on a thread of its own with a
/// runtime of its own, so it works inside and outside an async runtime alike.
pub mod blocking {
    use super::{Error, RemoteUrl, Retry, WriteMode};

    fn on_own_runtime<T: Send>(
        url: &RemoteUrl,
        f: impl Future<Output = Result<T, Error>> + Send,
    ) -> Result<T, Error> {
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Other {
                        url: url.to_string(),
                        reason: format!("cannot start the async runtime: {e}"),
                    })?;
                rt.block_on(f)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(Error::Other {
                    url: url.to_string(),
                    reason: "the transfer thread panicked".into(),
                })
            })
        })
    }

    pub fn read(url: &RemoteUrl) -> Result<Vec<u8>, Error> {
        on_own_runtime(url, super::read(url))
    }

    pub fn write_with_retry(
        url: &RemoteUrl,
        bytes: &[u8],
        mode: WriteMode,
        retry: Retry,
    ) -> Result<(), Error> {
        on_own_runtime(url, super::write_with_retry(url, bytes, mode, retry))
    }

    pub fn check_writable(url: &RemoteUrl, mode: WriteMode) -> Result<(), Error> {
        on_own_runtime(url, super::check_writable(url, mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(s: &str) -> RemoteUrl {
        match parse(s).unwrap() {
            Location::Remote(r) => r,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn paths_stdio_and_file_urls_stay_local() {
        assert_eq!(parse("-").unwrap(), Location::Stdio);
        assert_eq!(
            parse("dir/a b.ipynb").unwrap(),
            Location::Local("dir/a b.ipynb".into())
        );
        assert_eq!(
            parse("file:///tmp/a%20b.ipynb").unwrap(),
            Location::Local("/tmp/a b.ipynb".into())
        );
        // A colon in a file name is not a scheme.
        assert_eq!(
            parse("run:1.ipynb").unwrap(),
            Location::Local("run:1.ipynb".into())
        );
    }

    #[test]
    fn aliases_resolve() {
        let r = remote("abs://acct.blob.core.windows.net/cont/dir/x.ipynb");
        assert_eq!(
            r.resolved.as_str(),
            "https://acct.blob.core.windows.net/cont/dir/x.ipynb"
        );
        assert_eq!(
            r.as_str(),
            "abs://acct.blob.core.windows.net/cont/dir/x.ipynb"
        );
        assert_eq!(
            remote("abs://cont/x.ipynb").resolved.as_str(),
            "az://cont/x.ipynb"
        );
        assert_eq!(
            remote("gcs://b/x.ipynb").resolved.as_str(),
            "gs://b/x.ipynb"
        );
        let j = remote("jupyter+http://127.0.0.1:8888/api/contents/a/b.ipynb");
        assert_eq!(j.kind, Kind::JupyterContents);
        assert_eq!(j.resolved.scheme(), "http");
        assert_eq!(j.file_name(), Some("b.ipynb"));
        assert!(remote("http://h/x.ipynb").is_plain_http());
        assert!(!remote("s3://b/x.ipynb").is_plain_http());
    }

    #[test]
    fn bad_urls_are_named() {
        let e = parse("ftp://h/x.ipynb").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ftp://h/x.ipynb: unsupported URL scheme"),
            "{e}"
        );
        assert!(matches!(
            parse("s3://bucket").unwrap_err(),
            Error::InvalidUrl { .. }
        ));
        assert!(matches!(
            parse("jupyter+http://h/files/x.ipynb").unwrap_err(),
            Error::InvalidUrl { .. }
        ));
    }
}
