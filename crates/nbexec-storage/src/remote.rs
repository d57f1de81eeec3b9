//! The network backends: `object_store` for S3, GCS, Azure and plain HTTP, and a small
//! client for a Jupyter server's Contents API.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutMode, PutOptions, PutPayload,
    RetryConfig,
};

use crate::{Error, Kind, RemoteUrl, WriteMode};

/// The longest a reason from a server is quoted in an error line.
const MAX_REASON: usize = 300;

/// TLS is rustls with the `ring` provider, the project's one crypto provider.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// One line of a server's reason, bounded.
fn one_line(text: &str) -> String {
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

fn map_err(url: &RemoteUrl, e: object_store::Error) -> Error {
    let url_s = url.to_string();
    let reason = one_line(&e.to_string());
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound { url: url_s, reason },
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            Error::AlreadyExists { url: url_s }
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => Error::Denied { url: url_s, reason },
        object_store::Error::InvalidPath { .. } => Error::InvalidUrl { url: url_s, reason },
        _ => Error::Other { url: url_s, reason },
    }
}

/// The store and the object's path in it, configured from the environment.
fn store(url: &RemoteUrl) -> Result<(Arc<dyn ObjectStore>, Path), Error> {
    install_crypto_provider();
    let invalid = |reason: String| Error::InvalidUrl {
        url: url.to_string(),
        reason: one_line(&reason),
    };
    let (scheme, path) =
        ObjectStoreScheme::parse(&url.resolved).map_err(|e| invalid(e.to_string()))?;
    // A request is retried once inside the store; `write_with_retry` does the
    // backing off, so a dead server fails in seconds, not minutes.
    let retry = RetryConfig {
        max_retries: 1,
        retry_timeout: Duration::from_secs(30),
        ..RetryConfig::default()
    };
    let text = url.resolved.as_str();
    let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match scheme {
        ObjectStoreScheme::AmazonS3 => object_store::aws::AmazonS3Builder::from_env()
            .with_url(text)
            .with_retry(retry)
            .build()
            .map(|s| Arc::new(s) as _),
        ObjectStoreScheme::GoogleCloudStorage => {
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(text)
                .with_retry(retry)
                .build()
                .map(|s| Arc::new(s) as _)
        }
        ObjectStoreScheme::MicrosoftAzure => object_store::azure::MicrosoftAzureBuilder::from_env()
            .with_url(text)
            .with_retry(retry)
            .build()
            .map(|s| Arc::new(s) as _),
        ObjectStoreScheme::Http => object_store::http::HttpBuilder::new()
            .with_url(&url.resolved[..url::Position::BeforePath])
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .with_retry(retry)
            .build()
            .map(|s| Arc::new(s) as _),
        other => return Err(invalid(format!("{other:?} is not a remote store"))),
    };
    let store = built.map_err(|e| invalid(e.to_string()))?;
    Ok((store, path))
}

pub(crate) async fn read(url: &RemoteUrl) -> Result<Vec<u8>, Error> {
    if url.kind == Kind::JupyterContents {
        return contents::read(url).await;
    }
    let (store, path) = store(url)?;
    let got = store.get(&path).await.map_err(|e| map_err(url, e))?;
    let bytes = got.bytes().await.map_err(|e| map_err(url, e))?;
    Ok(bytes.to_vec())
}

pub(crate) async fn write(url: &RemoteUrl, bytes: &[u8], mode: WriteMode) -> Result<(), Error> {
    if url.kind == Kind::JupyterContents {
        return contents::write(url, bytes, mode).await;
    }
    let (store, path) = store(url)?;
    let payload = PutPayload::from(bytes.to_vec());
    // Plain HTTP has no conditional PUT: the check before the run is all there is.
    let conditional = mode == WriteMode::Create && !url.is_plain_http();
    let opts = PutOptions {
        mode: if conditional {
            PutMode::Create
        } else {
            PutMode::Overwrite
        },
        ..PutOptions::default()
    };
    store
        .put_opts(&path, payload, opts)
        .await
        .map(drop)
        .map_err(|e| map_err(url, e))
}

pub(crate) async fn check_writable(url: &RemoteUrl, mode: WriteMode) -> Result<(), Error> {
    if url.kind == Kind::JupyterContents {
        return contents::check_writable(url, mode).await;
    }
    let (store, path) = store(url)?;
    if mode == WriteMode::Create {
        match store.head(&path).await {
            Ok(_) => {
                return Err(Error::AlreadyExists {
                    url: url.to_string(),
                });
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(map_err(url, e)),
        }
    }
    if url.is_plain_http() {
        return Ok(());
    }
    // A listing under the object's own key (`KEY/`, one page, nearly always empty)
    // tells a missing bucket or container, and credentials the store refuses,
    // before a kernel starts, however many objects sit beside it.
    match store.list_with_delimiter(Some(&path)).await {
        Ok(_) => Ok(()),
        Err(e) if is_missing_container(&e) => Err(Error::NotFound {
            url: url.to_string(),
            reason: format!(
                "the bucket or container does not exist ({})",
                one_line(&e.to_string())
            ),
        }),
        Err(e @ object_store::Error::Unauthenticated { .. }) => Err(map_err(url, e)),
        Err(e @ object_store::Error::PermissionDenied { .. }) => {
            let reason = one_line(&e.to_string());
            // A key that the store does not know at all is refused for writes too;
            // a policy that only forbids listing is not our business.
            if reason.contains("InvalidAccessKeyId") || reason.contains("SignatureDoesNotMatch") {
                Err(Error::Denied {
                    url: url.to_string(),
                    reason,
                })
            } else {
                Ok(())
            }
        }
        // A network error now may be gone by the end of the run: the write decides.
        Err(_) => Ok(()),
    }
}

/// Does a listing's error say the bucket or container is not there? Stores answer
/// 404 with their own code; not every store maps that to `NotFound` for a listing.
fn is_missing_container(e: &object_store::Error) -> bool {
    if matches!(e, object_store::Error::NotFound { .. }) {
        return true;
    }
    let text = e.to_string();
    ["NoSuchBucket", "ContainerNotFound", "404 Not Found"]
        .iter()
        .any(|code| text.contains(code))
}

/// Jupyter's Contents API: `GET`/`PUT /api/contents/PATH` with a notebook model,
/// authenticated by the token in `JUPYTER_TOKEN`.
mod contents {
    use super::{Error, RemoteUrl, WriteMode, one_line};

    fn client(url: &RemoteUrl) -> Result<reqwest::Client, Error> {
        super::install_crypto_provider();
        reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| Error::Other {
                url: url.to_string(),
                reason: one_line(&e.to_string()),
            })
    }

    fn with_token(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match std::env::var("JUPYTER_TOKEN") {
            Ok(t) if !t.is_empty() => req.header("Authorization", format!("token {t}")),
            _ => req,
        }
    }

    fn transport(url: &RemoteUrl, e: reqwest::Error) -> Error {
        Error::Other {
            url: url.to_string(),
            reason: one_line(&e.to_string()),
        }
    }

    /// An unsuccessful answer as an error, the server's `message` as the reason.
    async fn status_error(url: &RemoteUrl, resp: reqwest::Response) -> Error {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| body.clone());
        let reason = one_line(&format!("HTTP {status}: {message}"));
        let url = url.to_string();
        match status.as_u16() {
            404 => Error::NotFound { url, reason },
            401 | 403 => Error::Denied { url, reason },
            400..=499 => Error::InvalidUrl { url, reason },
            _ => Error::Other { url, reason },
        }
    }

    pub(super) async fn read(url: &RemoteUrl) -> Result<Vec<u8>, Error> {
        let mut api = url.resolved.clone();
        api.query_pairs_mut()
            .append_pair("type", "notebook")
            .append_pair("content", "1");
        let resp = with_token(client(url)?.get(api))
            .send()
            .await
            .map_err(|e| transport(url, e))?;
        if !resp.status().is_success() {
            return Err(status_error(url, resp).await);
        }
        let body = resp.bytes().await.map_err(|e| transport(url, e))?;
        let model: serde_json::Value = serde_json::from_slice(&body).map_err(|e| Error::Other {
            url: url.to_string(),
            reason: format!("the server's answer is not JSON: {e}"),
        })?;
        match model.get("content") {
            Some(nb @ serde_json::Value::Object(_)) => Ok(nb.to_string().into_bytes()),
            _ => Err(Error::Other {
                url: url.to_string(),
                reason: "the server's answer has no notebook content".into(),
            }),
        }
    }

    async fn exists(url: &RemoteUrl) -> Result<bool, Error> {
        let mut api = url.resolved.clone();
        api.query_pairs_mut().append_pair("content", "0");
        let resp = with_token(client(url)?.get(api))
            .send()
            .await
            .map_err(|e| transport(url, e))?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error(url, resp).await),
        }
    }

    pub(super) async fn check_writable(url: &RemoteUrl, mode: WriteMode) -> Result<(), Error> {
        // One request either way: it also proves the token is accepted.
        if exists(url).await? && mode == WriteMode::Create {
            return Err(Error::AlreadyExists {
                url: url.to_string(),
            });
        }
        Ok(())
    }

    pub(super) async fn write(url: &RemoteUrl, bytes: &[u8], mode: WriteMode) -> Result<(), Error> {
        // The Contents API has no conditional create: the check is as close to the
        // write as it can be.
        if mode == WriteMode::Create && exists(url).await? {
            return Err(Error::AlreadyExists {
                url: url.to_string(),
            });
        }
        let content: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::Other {
                url: url.to_string(),
                reason: format!("the notebook to upload is not JSON: {e}"),
            })?;
        let model = serde_json::json!({"type": "notebook", "format": "json", "content": content});
        let resp = with_token(client(url)?.put(url.resolved.clone()))
            .header("Content-Type", "application/json")
            .body(model.to_string())
            .send()
            .await
            .map_err(|e| transport(url, e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(status_error(url, resp).await)
        }
    }
}
