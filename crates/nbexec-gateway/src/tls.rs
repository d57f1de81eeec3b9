//! TLS to an https gateway (`tls` feature): one rustls client configuration, on the
//! `ring` provider, shared by the REST client and the channels WebSocket, so both
//! trust the same authorities and present the same client certificate.
//!
//! What it trusts and presents comes from the settings Jupyter's `GatewayClient`
//! reads: `JUPYTER_GATEWAY_CA_CERTS` (a PEM file of authorities, instead of the
//! system's), `JUPYTER_GATEWAY_CLIENT_CERT` and `…_CLIENT_KEY` (PEM; the key may sit
//! in the certificate's file), and `JUPYTER_GATEWAY_VALIDATE_CERT=false` (trust any
//! certificate: for test gateways only).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_tungstenite::tungstenite;

use crate::{GatewayConfig, GatewayError};

/// The client configuration for `cfg`'s certificates. Files are read once, here.
pub(crate) fn client_config(cfg: &GatewayConfig) -> Result<Arc<ClientConfig>, GatewayError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Config(format!("cannot set up TLS: {e}")))?;
    let builder = if !cfg.validate_cert {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                provider.signature_verification_algorithms,
            )))
    } else if let Some(path) = &cfg.ca_certs {
        let mut roots = RootCertStore::empty();
        for cert in read_certs(path, "JUPYTER_GATEWAY_CA_CERTS")? {
            roots.add(cert).map_err(|e| {
                GatewayError::Config(format!(
                    "JUPYTER_GATEWAY_CA_CERTS={}: a certificate is not usable as an authority: {e}",
                    path.display()
                ))
            })?;
        }
        builder.with_root_certificates(roots)
    } else {
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| {
            GatewayError::Config(format!(
                "cannot load the system's certificate authorities: {e}"
            ))
        })?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    };
    let config = match &cfg.client_cert {
        None => builder.with_no_client_auth(),
        Some(cert_path) => {
            let certs = read_certs(cert_path, "JUPYTER_GATEWAY_CLIENT_CERT")?;
            let (key_path, var) = match &cfg.client_key {
                Some(p) => (p.as_path(), "JUPYTER_GATEWAY_CLIENT_KEY"),
                None => (cert_path.as_path(), "JUPYTER_GATEWAY_CLIENT_CERT"),
            };
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
                GatewayError::Config(format!(
                    "{var}={}: no private key read from it ({e})",
                    key_path.display()
                ))
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                GatewayError::Config(format!(
                    "JUPYTER_GATEWAY_CLIENT_CERT={}: the certificate and key do not go together: {e}",
                    cert_path.display()
                ))
            })?
        }
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path, var: &str) -> Result<Vec<CertificateDer<'static>>, GatewayError> {
    let bad = |detail: String| GatewayError::Config(format!("{var}={}: {detail}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The TLS problem behind an error of the HTTP or WebSocket client, said plainly,
/// if there is one in its chain of causes.
pub(crate) fn explain(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        if let Some(tungstenite::Error::Tls(tungstenite::error::TlsError::Rustls(tls))) =
            e.downcast_ref::<tungstenite::Error>()
        {
            return Some(describe(tls));
        }
        // An I/O error wrapping another error (rustls's, or an I/O error wrapping
        // it) hides it from `source()`: look inside.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn describe(e: &rustls::Error) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match e {
        E::InvalidCertificate(C::UnknownIssuer) => "its certificate is not signed by an authority nbexec trusts (set JUPYTER_GATEWAY_CA_CERTS to the PEM file of the gateway's CA)".into(),
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "its certificate is not valid for this host name".into()
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "its certificate has expired".into()
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "its certificate is not valid yet".into()
        }
        E::InvalidCertificate(other) => format!("its certificate is not accepted ({other:?})"),
        E::AlertReceived(A::CertificateRequired | A::HandshakeFailure | A::BadCertificate | A::UnknownCA)
            => format!(
            "it refused the TLS connection ({e}): does it want a client certificate (JUPYTER_GATEWAY_CLIENT_CERT/KEY) it trusts?"
        ),
        other => format!("TLS failed: {other}"),
    }
}

/// `JUPYTER_GATEWAY_VALIDATE_CERT=false`: any certificate is taken, but the
/// handshake's signatures are still checked (the connection is encrypted to whoever
/// holds that certificate's key).
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
