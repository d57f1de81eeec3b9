//! What can go wrong talking to a gateway. Every message names the gateway, and
//! quotes what it answered.

/// An error from the gateway or on the way to it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// Bad `--gateway-url` or `JUPYTER_GATEWAY_*` settings.
    #[error("{0}")]
    Config(String),
    /// Nothing answers at the gateway's address (refused, DNS, timeout).
    #[error("cannot reach the gateway at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    /// The TLS connection to an https gateway failed: its certificate, or ours.
    #[error("gateway {url}: {detail}")]
    Tls { url: String, detail: String },
    /// The gateway answered with an error status; `body` is its message, quoted.
    #[error("gateway {url}: {method} {path} answered {status}{}", quote_body(.body))]
    Status {
        url: String,
        method: &'static str,
        path: String,
        status: u16,
        body: String,
    },
    /// The gateway answered something that is not the Jupyter protocol.
    #[error("gateway {url}: {detail}")]
    Protocol { url: String, detail: String },
    /// The kernel did not answer `kernel_info_request` in time.
    #[error("gateway {url}: kernel {kernel_id} did not become ready within {secs} s")]
    StartTimeout {
        url: String,
        kernel_id: String,
        secs: u64,
    },
}

impl GatewayError {
    /// The HTTP status, if the gateway answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            GatewayError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Kernel Gateway's `max_kernels` and Enterprise Gateway's limits: worth waiting.
    pub fn is_resource_limit(&self) -> bool {
        match self {
            GatewayError::Status { status, body, .. } => {
                *status == 403 && body.to_ascii_lowercase().contains("limit")
            }
            _ => false,
        }
    }
}

/// ` (Unauthorized): "message"`, from a Jupyter error body
/// (`{"reason": …, "message": …}`), or the raw body, shortened.
fn quote_body(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) {
        let reason = map.get("reason").and_then(|v| v.as_str()).unwrap_or("");
        let message = map.get("message").and_then(|v| v.as_str()).unwrap_or("");
        let mut out = String::new();
        if !reason.is_empty() {
            out.push_str(&format!(" {reason}"));
        }
        if !message.is_empty() {
            out.push_str(&format!(": {:?}", one_line(message)));
        }
        if !out.is_empty() {
            return out;
        }
    }
    format!(": {:?}", one_line(body))
}

fn one_line(s: &str) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 300 {
        let cut: String = flat.chars().take(300).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_gateway_and_quote_its_body() {
        let e = GatewayError::Status {
            url: "http://127.0.0.1:9".into(),
            method: "POST",
            path: "/api/kernels".into(),
            status: 403,
            body: r#"{"reason": "Forbidden", "message": "Resource Limit"}"#.into(),
        };
        assert_eq!(
            e.to_string(),
            r#"gateway http://127.0.0.1:9: POST /api/kernels answered 403 Forbidden: "Resource Limit""#
        );
        assert!(e.is_resource_limit());
        let e = GatewayError::Status {
            url: "http://h".into(),
            method: "GET",
            path: "/api".into(),
            status: 401,
            body: r#"{"reason":"Unauthorized","message":""}"#.into(),
        };
        assert_eq!(
            e.to_string(),
            "gateway http://h: GET /api answered 401 Unauthorized"
        );
        assert!(!e.is_resource_limit());
    }
}
