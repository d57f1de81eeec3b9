//! HTTPS for `nbexec serve`: `--tls-cert FILE --tls-key FILE`, or `--tls-self-signed`;
//! and the accept loop that serves both HTTPS and plain HTTP.
//!
//! rustls with the `ring` provider, the project's one crypto provider (never aws-lc-rs,
//! never OpenSSL). The self-signed certificate is made at start-up with `rcgen`
//! (ECDSA P-256) for `localhost`, `127.0.0.1`, `::1` and the bind host; its SHA-256
//! fingerprint is printed so a client can pin it. The server side is a small accept
//! loop: tokio-rustls for the handshake (bounded in time), hyper-util's HTTP/1.1 and
//! HTTP/2 connection builder for the rest, with a graceful shutdown like `axum::serve`'s.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files: the certificate chain (leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate made now, for these host names / addresses besides the loopback ones.
    SelfSigned { hosts: Vec<String> },
}

/// A ready server configuration and what to tell the operator about it.
pub struct Tls {
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), as colon-separated hex.
    pub fingerprint: String,
    /// The leaf certificate in PEM (for a client to trust it).
    pub cert_pem: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {1}", path = .0.display())]
    Read(PathBuf, String),
    #[error("{path}: no certificate in it (expected PEM `BEGIN CERTIFICATE`)", path = .0.display())]
    NoCertificate(PathBuf),
    #[error("{path}: no private key in it (expected PEM PKCS#8, PKCS#1 or SEC1)", path = .0.display())]
    NoKey(PathBuf),
    #[error("the TLS certificate and key do not work together: {0}")]
    Config(String),
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server configuration (ring provider, TLS 1.2 and 1.3, ALPN h2 and http/1.1).
pub fn load(source: &TlsSource) -> Result<Tls, TlsError> {
    let (chain, key) = match source {
        TlsSource::Files { cert, key } => (read_chain(cert)?, read_key(key)?),
        TlsSource::SelfSigned { hosts } => self_signed(hosts)?,
    };
    let leaf = chain[0].clone();
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let digest = Sha256::digest(leaf.as_ref());
    let mut fingerprint = String::new();
    for (i, b) in digest.iter().enumerate() {
        let _ = write!(fingerprint, "{}{b:02X}", if i > 0 { ":" } else { "" });
    }
    let cert_pem = pem_encode("CERTIFICATE", leaf.as_ref());
    Ok(Tls {
        config: Arc::new(config),
        fingerprint,
        cert_pem,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Read(path.to_owned(), pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read(path.to_owned(), pem_error(e)))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey(path.to_owned()),
        e => TlsError::Read(path.to_owned(), pem_error(e)),
    })
}

fn pem_error(e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("not valid PEM ({other:?})"),
    }
}

fn self_signed(
    hosts: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    for h in hosts {
        let h = h.trim_start_matches('[').trim_end_matches(']');
        let unspecified = h.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified());
        if !h.is_empty() && !unspecified && !names.iter().any(|n| n == h) {
            names.push(h.to_owned());
        }
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "nbexec serve (self-signed)");
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    Ok((vec![cert.der().clone()], key))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

/// How long a client may take over the TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's head (HTTP/1.1).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` (HTTPS with `tls`, else plain HTTP) until `shutdown`
/// resolves, then stops accepting and waits for open connections to finish, as
/// `axum::serve(..).with_graceful_shutdown` does, except that a request head must
/// arrive within [`HEADER_READ_TIMEOUT`]: a client that sends half a head and waits
/// cannot hold the shutdown (and so the drain of running jobs) open for ever.
pub async fn serve(
    listener: TcpListener,
    tls: Option<&Tls>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(|t| TlsAcceptor::from(t.config.clone()));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) if is_connection_error(&e) => continue,
                Err(_) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(TokioIo::new(tcp), app, watcher).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                    if let Ok(Ok(stream)) = handshake.await {
                        serve_connection(TokioIo::new(stream), app, watcher).await;
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn serve_connection<I>(io: I, app: Router, watcher: hyper_util::server::graceful::Watcher)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let req = req.map(axum::body::Body::new);
        let app = app.clone();
        async move {
            use tower::ServiceExt;
            Ok::<_, Infallible>(app.oneshot(req).await.unwrap_or_else(|e| match e {}))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection_with_upgrades(io, service);
    let _ = watcher.watch(conn.into_owned()).await;
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_loads_with_ring_and_names_the_hosts() {
        let tls = load(&TlsSource::SelfSigned {
            hosts: vec!["nb.example".into(), "0.0.0.0".into()],
        })
        .unwrap();
        assert_eq!(tls.fingerprint.len(), 32 * 3 - 1);
        assert!(tls.cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        // The PEM we print parses back to the certificate in use.
        let der = CertificateDer::from_pem_slice(tls.cert_pem.as_bytes()).unwrap();
        assert_eq!(format!("{:X}", Sha256::digest(der.as_ref())).len(), 64);
        assert_eq!(tls.config.alpn_protocols.len(), 2);
    }

    #[test]
    fn files_round_trip_and_bad_files_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let tls = load(&TlsSource::Files {
            cert: c.clone(),
            key: k.clone(),
        })
        .unwrap();
        assert_eq!(tls.cert_pem, pem_encode("CERTIFICATE", cert.der()));
        assert_eq!(tls.cert_pem.replace('\r', ""), cert.pem().replace('\r', ""));

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "hello\n").unwrap();
        let e = load(&TlsSource::Files {
            cert: empty.clone(),
            key: k.clone(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        let e = load(&TlsSource::Files {
            cert: c.clone(),
            key: empty,
        })
        .unwrap_err();
        assert!(e.to_string().contains("no private key"), "{e}");
        let e = load(&TlsSource::Files {
            cert: dir.path().join("nope.pem"),
            key: k.clone(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("nope.pem"), "{e}");
        // A key that is not the certificate's.
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(&k, other.serialize_pem()).unwrap();
        let e = load(&TlsSource::Files { cert: c, key: k }).unwrap_err();
        assert!(e.to_string().contains("do not work together"), "{e}");
    }
}
