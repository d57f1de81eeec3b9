//! Where the gateway is and how to talk to it: `--gateway-url` and the
//! `JUPYTER_GATEWAY_*` environment that Jupyter Server's `GatewayClient` reads.

use std::path::PathBuf;
use std::time::Duration;

use crate::GatewayError;

/// How to reach a gateway. `Debug` never shows the token.
#[derive(Clone)]
pub struct GatewayConfig {
    /// `http://host:port[/base]`, without a trailing slash.
    pub url: String,
    /// The WebSocket base (`ws://…`); by default `url` with http → ws.
    pub ws_url: String,
    pub auth_token: Option<String>,
    /// `token` by default (Kernel Gateway refuses `Bearer`).
    pub auth_scheme: String,
    /// `Authorization` by default.
    pub auth_header_key: String,
    /// Extra headers for every request (`JUPYTER_GATEWAY_HEADERS`, a JSON object).
    pub headers: Vec<(String, String)>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Names of variables sent to the kernel besides `KERNEL_*`.
    pub allowed_envs: Vec<String>,
    /// Check an https gateway's certificate (`JUPYTER_GATEWAY_VALIDATE_CERT`, on by
    /// default; off takes any certificate).
    pub validate_cert: bool,
    /// A PEM file of the authorities an https gateway's certificate is checked
    /// against instead of the system's (`JUPYTER_GATEWAY_CA_CERTS`).
    pub ca_certs: Option<PathBuf>,
    /// A PEM certificate (chain) nbexec presents to an https gateway that asks for
    /// one (`JUPYTER_GATEWAY_CLIENT_CERT`), and its key (`JUPYTER_GATEWAY_CLIENT_KEY`;
    /// without it, the key is looked for in the certificate's file).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// How many times a dropped WebSocket is reconnected before the run fails.
    pub reconnect_max: u32,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("url", &self.url)
            .field("ws_url", &self.ws_url)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("auth_scheme", &self.auth_scheme)
            .field("headers", &self.headers.len())
            .field("validate_cert", &self.validate_cert)
            .field("ca_certs", &self.ca_certs)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .finish_non_exhaustive()
    }
}

impl GatewayConfig {
    /// A configuration for `url` with the defaults of `GatewayClient`.
    pub fn new(url: &str) -> Result<GatewayConfig, GatewayError> {
        let url = url.trim().trim_end_matches('/').to_owned();
        let ws_url = if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            return Err(GatewayError::Config(format!(
                "the gateway URL {url:?} must start with http:// or https://"
            )));
        };
        if url.starts_with("https://") && !cfg!(feature = "tls") {
            return Err(GatewayError::Config(format!(
                "the gateway URL {url} is https, but this nbexec was built without the `tls` feature"
            )));
        }
        Ok(GatewayConfig {
            url,
            ws_url,
            auth_token: None,
            auth_scheme: "token".into(),
            auth_header_key: "Authorization".into(),
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(40),
            request_timeout: Duration::from_secs(42),
            allowed_envs: Vec::new(),
            validate_cert: true,
            ca_certs: None,
            client_cert: None,
            client_key: None,
            reconnect_max: 5,
        })
    }

    /// The configuration from `--gateway-url` (which wins) or `JUPYTER_GATEWAY_URL`,
    /// and the rest of the `JUPYTER_GATEWAY_*` environment. `None` when neither names
    /// a gateway: kernels are local.
    pub fn from_env(flag_url: Option<&str>) -> Result<Option<GatewayConfig>, GatewayError> {
        Self::from_lookup(flag_url, |k| std::env::var(k).ok())
    }

    /// [`GatewayConfig::from_env`] with the environment given as a function.
    pub fn from_lookup(
        flag_url: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<GatewayConfig>, GatewayError> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let Some(url) = flag_url
            .map(str::to_owned)
            .or_else(|| get("JUPYTER_GATEWAY_URL"))
        else {
            return Ok(None);
        };
        let mut cfg = GatewayConfig::new(&url)?;
        if let Some(ws) = get("JUPYTER_GATEWAY_WS_URL") {
            cfg.ws_url = ws.trim().trim_end_matches('/').to_owned();
        }
        cfg.auth_token = get("JUPYTER_GATEWAY_AUTH_TOKEN");
        if let Some(s) = get("JUPYTER_GATEWAY_AUTH_SCHEME") {
            cfg.auth_scheme = s;
        }
        if let Some(k) = get("JUPYTER_GATEWAY_AUTH_HEADER_KEY") {
            cfg.auth_header_key = k;
        }
        if let Some(h) = get("JUPYTER_GATEWAY_HEADERS") {
            let parsed: serde_json::Value = serde_json::from_str(&h).map_err(|e| {
                GatewayError::Config(format!("JUPYTER_GATEWAY_HEADERS is not JSON: {e}"))
            })?;
            let Some(map) = parsed.as_object() else {
                return Err(GatewayError::Config(
                    "JUPYTER_GATEWAY_HEADERS must be a JSON object of header names to values"
                        .into(),
                ));
            };
            for (k, v) in map {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                cfg.headers.push((k.clone(), v));
            }
        }
        let secs = |name: &str| -> Result<Option<Duration>, GatewayError> {
            match get(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(|s| Some(Duration::from_secs_f64(s)))
                    .ok_or_else(|| {
                        GatewayError::Config(format!("{name}={v:?} is not a number of seconds"))
                    }),
            }
        };
        if let Some(t) = secs("JUPYTER_GATEWAY_CONNECT_TIMEOUT")? {
            cfg.connect_timeout = t;
        }
        if let Some(t) = secs("JUPYTER_GATEWAY_REQUEST_TIMEOUT")? {
            cfg.request_timeout = t;
        }
        if let Some(envs) = get("JUPYTER_GATEWAY_ALLOWED_ENVS") {
            cfg.allowed_envs = envs
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = get("JUPYTER_GATEWAY_VALIDATE_CERT") {
            // GatewayClient turns it off with `no` or `false`; any case, and `0`, too.
            cfg.validate_cert =
                !matches!(v.trim().to_ascii_lowercase().as_str(), "false" | "no" | "0");
        }
        cfg.ca_certs = get("JUPYTER_GATEWAY_CA_CERTS").map(PathBuf::from);
        cfg.client_cert = get("JUPYTER_GATEWAY_CLIENT_CERT").map(PathBuf::from);
        cfg.client_key = get("JUPYTER_GATEWAY_CLIENT_KEY").map(PathBuf::from);
        if cfg.client_key.is_some() && cfg.client_cert.is_none() {
            return Err(GatewayError::Config(
                "JUPYTER_GATEWAY_CLIENT_KEY is set but JUPYTER_GATEWAY_CLIENT_CERT is not: a key needs its certificate".into(),
            ));
        }
        if let Some(n) = get("JUPYTER_GATEWAY_RETRY_MAX") {
            cfg.reconnect_max = n.trim().parse().map_err(|_| {
                GatewayError::Config(format!("JUPYTER_GATEWAY_RETRY_MAX={n:?} is not a count"))
            })?;
        }
        Ok(Some(cfg))
    }

    /// The value of the auth header, if a token is set.
    pub(crate) fn auth_value(&self) -> Option<String> {
        self.auth_token.as_ref().map(|t| {
            if self.auth_scheme.is_empty() {
                t.clone()
            } else {
                format!("{} {t}", self.auth_scheme)
            }
        })
    }

    /// The environment a kernel started through the gateway gets, as `GatewayClient`
    /// sends it: every `KERNEL_*` variable of ours and the allowed ones.
    pub fn kernel_env(
        &self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> serde_json::Map<String, serde_json::Value> {
        vars.into_iter()
            .filter(|(k, _)| k.starts_with("KERNEL_") || self.allowed_envs.contains(k))
            .map(|(k, v)| (k, serde_json::Value::from(v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_and_env_is_read() {
        let env = |k: &str| match k {
            "JUPYTER_GATEWAY_URL" => Some("http://env:1".to_owned()),
            "JUPYTER_GATEWAY_AUTH_TOKEN" => Some("s3cret".to_owned()),
            "JUPYTER_GATEWAY_HEADERS" => Some(r#"{"X-A": "b"}"#.to_owned()),
            "JUPYTER_GATEWAY_REQUEST_TIMEOUT" => Some("7".to_owned()),
            _ => None,
        };
        let cfg = GatewayConfig::from_lookup(Some("http://flag:2/"), env)
            .unwrap()
            .unwrap();
        assert_eq!(cfg.url, "http://flag:2");
        assert_eq!(cfg.ws_url, "ws://flag:2");
        assert_eq!(cfg.auth_value().as_deref(), Some("token s3cret"));
        assert_eq!(cfg.headers, vec![("X-A".to_owned(), "b".to_owned())]);
        assert_eq!(cfg.request_timeout, Duration::from_secs(7));
        assert!(!format!("{cfg:?}").contains("s3cret"));
        assert!(
            GatewayConfig::from_lookup(None, |_| None)
                .unwrap()
                .is_none()
        );
        assert!(GatewayConfig::from_lookup(Some("ftp://x"), |_| None).is_err());
    }

    #[test]
    fn certificate_settings_are_read_as_gateway_client_reads_them() {
        let env = |k: &str| match k {
            "JUPYTER_GATEWAY_CA_CERTS" => Some("/etc/ca.pem".to_owned()),
            "JUPYTER_GATEWAY_CLIENT_CERT" => Some("/etc/me.pem".to_owned()),
            "JUPYTER_GATEWAY_CLIENT_KEY" => Some("/etc/me.key".to_owned()),
            "JUPYTER_GATEWAY_VALIDATE_CERT" => Some("No".to_owned()),
            _ => None,
        };
        let cfg = GatewayConfig::from_lookup(Some("http://h:1"), env)
            .unwrap()
            .unwrap();
        assert_eq!(cfg.ca_certs, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(cfg.client_cert, Some(PathBuf::from("/etc/me.pem")));
        assert_eq!(cfg.client_key, Some(PathBuf::from("/etc/me.key")));
        assert!(!cfg.validate_cert);
        let defaults = GatewayConfig::from_lookup(Some("http://h:1"), |_| None)
            .unwrap()
            .unwrap();
        assert!(defaults.validate_cert && defaults.ca_certs.is_none());
        // A key alone is a mistake worth saying.
        let key_only =
            |k: &str| (k == "JUPYTER_GATEWAY_CLIENT_KEY").then(|| "/etc/me.key".to_owned());
        let err = GatewayConfig::from_lookup(Some("http://h:1"), key_only).unwrap_err();
        assert!(
            err.to_string().contains("JUPYTER_GATEWAY_CLIENT_CERT"),
            "{err}"
        );
    }

    #[test]
    fn only_kernel_and_allowed_vars_are_sent() {
        let mut cfg = GatewayConfig::new("http://h:1").unwrap();
        cfg.allowed_envs = vec!["FOO".into()];
        let env = cfg.kernel_env(vec![
            ("KERNEL_USERNAME".to_owned(), "alice".to_owned()),
            ("FOO".to_owned(), "1".to_owned()),
            ("BAR".to_owned(), "2".to_owned()),
        ]);
        assert_eq!(env.len(), 2);
        assert_eq!(env["KERNEL_USERNAME"], "alice");
        assert!(!env.contains_key("BAR"));
    }
}
