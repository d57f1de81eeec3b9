//! Outbound notifications: the final job JSON POSTed to a `--notify-url`.
//!
//! * Body: the job as `nbexec jobs show -f json` prints it.
//! * Headers: `Content-Type: application/json`, `X-Nbexec-Event: job.finished`,
//!   `X-Nbexec-Delivery: <uuid>` (the same on every attempt of one notification, so
//!   a receiver can drop duplicates) and, when a secret is set,
//!   `X-Nbexec-Signature: sha256=<hex HMAC-SHA256(secret, body)>`. The secret comes
//!   from an environment variable (`NBEXEC_NOTIFY_SECRET` unless
//!   `--notify-secret-env` names another), never from the command line.
//! * Retries: up to [`Policy::attempts`] attempts, backing off 0.5 s, 1 s, 2 s …;
//!   a connection failure, a timeout, 408, 429 and 5xx are retried, other answers
//!   are final. Any 2xx is delivered.
//! * The outcome is one line for the job's messages ([`Outcome::message`]).

use std::time::Duration;

use crate::webhook::sign_hex;

/// The default environment variable holding the signing secret.
pub const DEFAULT_SECRET_ENV: &str = "NBEXEC_NOTIFY_SECRET";

/// Where to send, and how to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    /// The HMAC key; `None` sends unsigned.
    pub secret: Option<Vec<u8>>,
}

impl Target {
    /// `url`, signed with the value of environment variable `secret_env` (when set
    /// and not empty).
    pub fn from_env(url: &str, secret_env: &str) -> Target {
        let secret = std::env::var_os(secret_env)
            .filter(|v| !v.is_empty())
            .map(|v| v.into_encoded_bytes());
        Target {
            url: url.to_owned(),
            secret,
        }
    }
}

/// Checks a notify URL: http:// or https:// with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("notify URL {url:?}: expected an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("notify URL {url:?}: no host"));
    }
    Ok(())
}

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub attempts: u32,
    /// The wait before the second attempt; it doubles after each one.
    pub first_backoff: Duration,
    /// The time one attempt may take.
    pub timeout: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            attempts: 4,
            first_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What happened to a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub url: String,
    pub delivered: bool,
    pub attempts: u32,
    /// The last HTTP status, if any answer came.
    pub status: Option<u16>,
    /// The last error (connection refused, timeout, status), if not delivered.
    pub error: Option<String>,
    pub signed: bool,
}

impl Outcome {
    /// One line for the job's messages.
    pub fn message(&self) -> String {
        let tries = if self.attempts == 1 {
            "1 attempt".to_owned()
        } else {
            format!("{} attempts", self.attempts)
        };
        let signed = if self.signed { "signed" } else { "unsigned" };
        if self.delivered {
            format!(
                "notification to {} delivered (HTTP {}, {tries}, {signed})",
                self.url,
                self.status.unwrap_or(0)
            )
        } else {
            format!(
                "notification to {} failed after {tries}: {}",
                self.url,
                self.error.as_deref().unwrap_or("unknown error")
            )
        }
    }
}

fn client(policy: &Policy) -> Result<reqwest::Client, String> {
    #[cfg(feature = "tls")]
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .timeout(policy.timeout)
        .connect_timeout(policy.timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// POSTs `body` (JSON) to the target, retrying as [`Policy`] says.
pub async fn deliver(target: &Target, body: &[u8], policy: Policy) -> Outcome {
    let mut outcome = Outcome {
        url: target.url.clone(),
        delivered: false,
        attempts: 0,
        status: None,
        error: None,
        signed: target.secret.is_some(),
    };
    if let Err(e) = check_url(&target.url) {
        outcome.error = Some(e);
        return outcome;
    }
    let http = match client(&policy) {
        Ok(c) => c,
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    };
    let delivery = uuid::Uuid::new_v4().to_string();
    let signature = target.secret.as_deref().map(|s| sign_hex(s, body));
    let mut backoff = policy.first_backoff;
    for attempt in 1..=policy.attempts.max(1) {
        outcome.attempts = attempt;
        let mut req = http
            .post(&target.url)
            .header("content-type", "application/json")
            .header("user-agent", concat!("nbexec/", env!("CARGO_PKG_VERSION")))
            .header("x-nbexec-event", "job.finished")
            .header("x-nbexec-delivery", &delivery)
            .body(body.to_vec());
        if let Some(sig) = &signature {
            req = req.header("x-nbexec-signature", sig);
        }
        let retry = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                outcome.status = Some(status);
                if resp.status().is_success() {
                    outcome.delivered = true;
                    outcome.error = None;
                    return outcome;
                }
                outcome.error = Some(format!("HTTP {status}"));
                status == 408 || status == 429 || status >= 500
            }
            Err(e) => {
                outcome.status = None;
                outcome.error = Some(describe(&e));
                true
            }
        };
        if !retry || attempt == policy.attempts {
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2);
    }
    outcome
}

/// A short reason for a failed request (reqwest's Display hides the cause).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(root) = last
        && !text.contains(&root)
    {
        text.push_str(": ");
        text.push_str(&root);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:9/x").is_ok());
        assert!(check_url("https://example.invalid/").is_ok());
        assert!(check_url("ftp://x").unwrap_err().contains("http://"));
        assert!(check_url("http://").unwrap_err().contains("no host"));
    }

    #[test]
    fn outcome_messages_say_what_happened() {
        let mut o = Outcome {
            url: "http://h/n".into(),
            delivered: true,
            attempts: 2,
            status: Some(204),
            error: None,
            signed: true,
        };
        assert_eq!(
            o.message(),
            "notification to http://h/n delivered (HTTP 204, 2 attempts, signed)"
        );
        o.delivered = false;
        o.attempts = 4;
        o.error = Some("HTTP 503".into());
        assert_eq!(
            o.message(),
            "notification to http://h/n failed after 4 attempts: HTTP 503"
        );
    }
}
