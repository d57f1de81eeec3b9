//! The gateway's REST API.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde_json::{Map, Value, json};

use crate::{GatewayConfig, GatewayError};

/// A gateway, as a REST client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Gateway {
    pub(crate) cfg: Arc<GatewayConfig>,
    http: reqwest::Client,
    /// The TLS settings of an https/wss gateway, shared by REST and the WebSocket.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl Gateway {
    pub fn new(cfg: GatewayConfig) -> Result<Gateway, GatewayError> {
        #[cfg(feature = "tls")]
        let tls = if cfg.url.starts_with("https://") || cfg.ws_url.starts_with("wss://") {
            Some(crate::tls::client_config(&cfg)?)
        } else {
            None
        };
        Self::build(
            Arc::new(cfg),
            #[cfg(feature = "tls")]
            tls,
        )
    }

    fn build(
        cfg: Arc<GatewayConfig>,
        #[cfg(feature = "tls")] tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Gateway, GatewayError> {
        #[allow(unused_mut)]
        let mut builder = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            .no_proxy();
        #[cfg(feature = "tls")]
        match &tls {
            Some(tls) => {
                builder = builder.tls_backend_preconfigured(rustls::ClientConfig::clone(tls));
            }
            None => crate::install_crypto_provider(),
        }
        let http = builder
            .build()
            .map_err(|e| GatewayError::Config(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Gateway {
            cfg,
            http,
            #[cfg(feature = "tls")]
            tls,
        })
    }

    /// The same gateway with a client of its own (no pooled connections shared):
    /// for work done on another runtime than this one's.
    pub(crate) fn detached(&self) -> Result<Gateway, GatewayError> {
        Self::build(
            self.cfg.clone(),
            #[cfg(feature = "tls")]
            self.tls.clone(),
        )
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    /// The gateway's base URL, as people see it.
    pub fn url(&self) -> &str {
        &self.cfg.url
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.cfg.url));
        for (k, v) in &self.cfg.headers {
            req = req.header(k, v);
        }
        if let Some(auth) = self.cfg.auth_value() {
            req = req.header(&self.cfg.auth_header_key, auth);
        }
        req
    }

    /// Sends a request; an error status becomes [`GatewayError::Status`] with the body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<(u16, String), GatewayError> {
        let name = method_name(&method);
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.unreachable(&e))?;
        if status >= 400 {
            return Err(GatewayError::Status {
                url: self.cfg.url.clone(),
                method: name,
                path: path.to_owned(),
                status,
                body: text,
            });
        }
        Ok((status, text))
    }

    fn unreachable(&self, e: &reqwest::Error) -> GatewayError {
        #[cfg(feature = "tls")]
        if let Some(detail) = crate::tls::explain(e) {
            return GatewayError::Tls {
                url: self.cfg.url.clone(),
                detail,
            };
        }
        // reqwest says "error sending request for url (…)"; the root cause says why.
        let mut detail = e.to_string();
        if let Some(mut root) = std::error::Error::source(e) {
            while let Some(next) = root.source() {
                root = next;
            }
            let root = root.to_string();
            if !detail.contains(&root) {
                detail = format!("{detail}: {root}");
            }
        }
        GatewayError::Unreachable {
            url: self.cfg.url.clone(),
            detail,
        }
    }

    fn json(&self, text: &str, what: &str) -> Result<Value, GatewayError> {
        serde_json::from_str(text).map_err(|e| GatewayError::Protocol {
            url: self.cfg.url.clone(),
            detail: format!("{what} is not JSON ({e})"),
        })
    }

    /// `GET /api/kernelspecs`: `{"default": …, "kernelspecs": {name: {…}}}`.
    pub async fn kernelspecs(&self) -> Result<Value, GatewayError> {
        let (_, text) = self
            .send(Method::GET, "/api/kernelspecs", None, None)
            .await?;
        self.json(&text, "the kernelspec list")
    }

    /// `POST /api/kernels`: starts a kernel and returns its model (`id`, `name`, …).
    /// The kernel is still starting when this returns.
    pub async fn create_kernel(
        &self,
        name: &str,
        env: Map<String, Value>,
    ) -> Result<Value, GatewayError> {
        let body = json!({"name": name, "env": env});
        let (_, text) = self
            .send(Method::POST, "/api/kernels", Some(&body), None)
            .await?;
        let model = self.json(&text, "the new kernel's model")?;
        if model.get("id").and_then(Value::as_str).is_none() {
            return Err(GatewayError::Protocol {
                url: self.cfg.url.clone(),
                detail: format!("POST /api/kernels answered without a kernel id: {text}"),
            });
        }
        Ok(model)
    }

    /// `GET /api/kernels/<id>`: the model, or `None` if the gateway has no such kernel.
    pub async fn kernel(&self, id: &str) -> Result<Option<Value>, GatewayError> {
        match self
            .send(Method::GET, &format!("/api/kernels/{id}"), None, None)
            .await
        {
            Ok((_, text)) => Ok(Some(self.json(&text, "the kernel's model")?)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/kernels` (Kernel Gateway needs `list_kernels` on for this).
    pub async fn kernels(&self) -> Result<Vec<Value>, GatewayError> {
        let (_, text) = self.send(Method::GET, "/api/kernels", None, None).await?;
        match self.json(&text, "the kernel list")? {
            Value::Array(items) => Ok(items),
            other => Err(GatewayError::Protocol {
                url: self.cfg.url.clone(),
                detail: format!("GET /api/kernels answered {other} instead of a list"),
            }),
        }
    }

    /// `POST /api/kernels/<id>/interrupt`.
    pub async fn interrupt(&self, id: &str) -> Result<(), GatewayError> {
        self.send(
            Method::POST,
            &format!("/api/kernels/{id}/interrupt"),
            None,
            None,
        )
        .await
        .map(drop)
    }

    /// `DELETE /api/kernels/<id>`, within `cap`. A kernel already gone is fine. A
    /// server error is retried until the cap: a gateway answers 500 to a DELETE that
    /// comes while it restarts a kernel that died (Kernel Gateway 3.0.1 does).
    pub async fn delete_kernel(&self, id: &str, cap: Duration) -> Result<(), GatewayError> {
        let path = format!("/api/kernels/{id}");
        let deadline = tokio::time::Instant::now() + cap;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let result =
                tokio::time::timeout(left, self.send(Method::DELETE, &path, None, Some(left)))
                    .await
                    .unwrap_or_else(|_| {
                        Err(GatewayError::Unreachable {
                            url: self.cfg.url.clone(),
                            detail: format!("DELETE {path} took more than {} s", cap.as_secs()),
                        })
                    });
            match result {
                Ok(_) => return Ok(()),
                Err(e) if e.status() == Some(404) => return Ok(()),
                Err(e)
                    if e.status().is_some_and(|s| s >= 500)
                        && left > Duration::from_millis(500) =>
                {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        _ => "request",
    }
}
