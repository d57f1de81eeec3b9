//! The kernel channels WebSocket: connecting (with the auth header on the upgrade)
//! and the two framings.

use futures_util::StreamExt;
use futures_util::stream::{SplitSink, SplitStream};
use serde_json::{Map, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{Gateway, GatewayError, Message};

/// The subprotocol of Jupyter Server's binary framing.
pub const V1_PROTOCOL: &str = "v1.kernel.websocket.jupyter.org";

/// How messages are framed on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `v1.kernel.websocket.jupyter.org`: binary frames, channel outside the JSON.
    V1,
    /// No subprotocol: JSON text frames with a `channel` key.
    Legacy,
}

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub(crate) type WsSink = SplitSink<Ws, WsMessage>;
pub(crate) type WsStream = SplitStream<Ws>;

impl Gateway {
    /// Opens `/api/kernels/<id>/channels?session_id=…`, offering the v1 subprotocol.
    pub(crate) async fn open_channels(
        &self,
        kernel_id: &str,
        session_id: &str,
    ) -> Result<(Ws, Framing), GatewayError> {
        let cfg = &self.cfg;
        let path = format!("/api/kernels/{kernel_id}/channels");
        let url = format!("{}{path}?session_id={session_id}", cfg.ws_url);
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| GatewayError::Config(format!("bad WebSocket URL {url}: {e}")))?;
        let headers = req.headers_mut();
        let bad = |what: &str| GatewayError::Config(format!("the {what} is not a valid header"));
        headers.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(V1_PROTOCOL),
        );
        for (k, v) in &cfg.headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                k.parse().map_err(|_| bad(&format!("header name {k:?}")))?;
            headers.insert(
                name,
                HeaderValue::from_str(v).map_err(|_| bad(&format!("value of {k}")))?,
            );
        }
        if let Some(auth) = cfg.auth_value() {
            let name: tokio_tungstenite::tungstenite::http::HeaderName = cfg
                .auth_header_key
                .parse()
                .map_err(|_| bad("auth header key"))?;
            headers.insert(
                name,
                HeaderValue::from_str(&auth).map_err(|_| bad("auth token"))?,
            );
        }
        #[cfg(feature = "tls")]
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            req,
            None,
            false,
            self.tls
                .as_ref()
                .map(|tls| tokio_tungstenite::Connector::Rustls(tls.clone())),
        );
        #[cfg(not(feature = "tls"))]
        let connect = tokio_tungstenite::connect_async(req);
        let (ws, resp) = match tokio::time::timeout(cfg.connect_timeout, connect).await {
            Err(_) => {
                return Err(GatewayError::Unreachable {
                    url: cfg.url.clone(),
                    detail: format!(
                        "the WebSocket {path} did not open within {} s",
                        cfg.connect_timeout.as_secs()
                    ),
                });
            }
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                return Err(GatewayError::Status {
                    url: cfg.url.clone(),
                    method: "GET",
                    path,
                    status: resp.status().as_u16(),
                    body,
                });
            }
            Ok(Err(e)) => {
                #[cfg(feature = "tls")]
                if let Some(detail) = crate::tls::explain(&e) {
                    return Err(GatewayError::Tls {
                        url: cfg.url.clone(),
                        detail: format!("WebSocket {path}: {detail}"),
                    });
                }
                return Err(GatewayError::Unreachable {
                    url: cfg.url.clone(),
                    detail: format!("WebSocket {path}: {e}"),
                });
            }
            Ok(Ok(pair)) => pair,
        };
        let framing = match resp.headers().get("Sec-WebSocket-Protocol") {
            Some(p) if p.as_bytes() == V1_PROTOCOL.as_bytes() => Framing::V1,
            _ => Framing::Legacy,
        };
        Ok((ws, framing))
    }
}

/// The connection's socket, for [`ack_now`].
pub(crate) fn raw_fd(ws: &Ws) -> Option<i32> {
    use std::os::fd::AsRawFd;
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => Some(s.as_raw_fd()),
        #[cfg(feature = "tls")]
        MaybeTlsStream::Rustls(s) => Some(s.get_ref().0.as_raw_fd()),
        _ => None,
    }
}

/// Acknowledges what arrived at once instead of after the delayed-ACK timer (40 ms
/// on Linux): a gateway writes a cell's messages one by one with Nagle on, so each
/// message after the first waits for our ACK of the one before.
pub(crate) fn ack_now(fd: Option<i32>) {
    #[cfg(target_os = "linux")]
    if let Some(fd) = fd {
        let one: libc::c_int = 1;
        // SAFETY: the socket stays open while the pump holds its stream; a
        // failure (say, it was just closed) only costs the optimisation.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// Splits a connection for the reader and writer halves of the pump.
pub(crate) fn split(ws: Ws) -> (WsSink, WsStream) {
    ws.split()
}

/// One frame for `msg` on `channel`.
pub(crate) fn encode(framing: Framing, channel: &str, msg: &Message) -> WsMessage {
    match framing {
        Framing::V1 => {
            let parts: [Vec<u8>; 5] = [
                channel.as_bytes().to_vec(),
                to_vec(&msg.header),
                to_vec(&msg.parent_header),
                to_vec(&msg.metadata),
                to_vec(&msg.content),
            ];
            let n = parts.len() + 1; // offsets: each part's start, then the end
            let mut out =
                Vec::with_capacity(8 * (n + 1) + parts.iter().map(Vec::len).sum::<usize>());
            out.extend_from_slice(&(n as u64).to_le_bytes());
            let mut at = 8 * (n + 1);
            for p in &parts {
                out.extend_from_slice(&(at as u64).to_le_bytes());
                at += p.len();
            }
            out.extend_from_slice(&(at as u64).to_le_bytes());
            for p in &parts {
                out.extend_from_slice(p);
            }
            WsMessage::Binary(out.into())
        }
        Framing::Legacy => {
            let mut map = Map::new();
            map.insert("header".into(), msg.header.clone());
            map.insert("parent_header".into(), msg.parent_header.clone());
            map.insert("metadata".into(), msg.metadata.clone());
            map.insert("content".into(), msg.content.clone());
            map.insert("buffers".into(), Value::Array(Vec::new()));
            map.insert("channel".into(), Value::from(channel));
            if let Some(id) = msg.header.get("msg_id") {
                map.insert("msg_id".into(), id.clone());
            }
            if let Some(t) = msg.header.get("msg_type") {
                map.insert("msg_type".into(), t.clone());
            }
            WsMessage::Text(Value::Object(map).to_string().into())
        }
    }
}

fn to_vec(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec())
}

/// The channel and message of a frame; `Ok(None)` for frames that carry none
/// (pings, pongs).
pub(crate) fn decode(
    framing: Framing,
    frame: &WsMessage,
) -> Result<Option<(String, Message)>, String> {
    match (framing, frame) {
        (Framing::V1, WsMessage::Binary(data)) => decode_v1(data).map(Some),
        (_, WsMessage::Text(text)) => decode_json(text.as_bytes()).map(Some),
        (Framing::Legacy, WsMessage::Binary(data)) => {
            // Legacy messages with buffers: a big-endian count, the parts' starts,
            // then the JSON message and the buffers.
            let count = read_u32(data, 0)? as usize;
            if count == 0 {
                return Err("a binary frame with no parts".into());
            }
            let start = read_u32(data, 4)? as usize;
            let end = if count > 1 {
                read_u32(data, 8)? as usize
            } else {
                data.len()
            };
            let json = data
                .get(start..end)
                .ok_or("a binary frame whose offsets overrun it")?;
            decode_json(json).map(Some)
        }
        _ => Ok(None),
    }
}

fn read_u32(data: &[u8], at: usize) -> Result<u32, String> {
    data.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| "a truncated binary frame".to_owned())
}

fn read_u64(data: &[u8], at: usize) -> Result<usize, String> {
    data.get(at..at + 8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
        .ok_or_else(|| "a truncated v1 frame".to_owned())
}

fn decode_v1(data: &[u8]) -> Result<(String, Message), String> {
    let n = read_u64(data, 0)?;
    if !(6..=1 << 16).contains(&n) {
        return Err(format!("a v1 frame with {n} offsets"));
    }
    let offsets: Vec<usize> = (0..n)
        .map(|i| read_u64(data, 8 * (i + 1)))
        .collect::<Result<_, _>>()?;
    let part = |i: usize| -> Result<&[u8], String> {
        let (a, b) = (offsets[i], offsets[i + 1]);
        data.get(a..b)
            .ok_or_else(|| "a v1 frame whose offsets overrun it".to_owned())
    };
    let channel = String::from_utf8_lossy(part(0)?).into_owned();
    let json = |i: usize| -> Result<Value, String> {
        serde_json::from_slice(part(i)?).map_err(|e| format!("a v1 frame part is not JSON: {e}"))
    };
    Ok((
        channel,
        Message {
            header: json(1)?,
            parent_header: json(2)?,
            metadata: json(3)?,
            content: json(4)?,
        },
    ))
}

fn decode_json(bytes: &[u8]) -> Result<(String, Message), String> {
    let mut v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("a frame is not JSON: {e}"))?;
    let mut take = |k: &str| v.get_mut(k).map(Value::take).unwrap_or(Value::Null);
    let channel = take("channel").as_str().unwrap_or("").to_owned();
    Ok((
        channel,
        Message {
            header: take("header"),
            parent_header: take("parent_header"),
            metadata: take("metadata"),
            content: take("content"),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Message {
        Message {
            header: json!({"msg_id": "a", "msg_type": "execute_request"}),
            parent_header: json!({}),
            metadata: json!({}),
            content: json!({"code": "1+1"}),
        }
    }

    #[test]
    fn v1_frames_round_trip_with_six_offsets() {
        let frame = encode(Framing::V1, "shell", &sample());
        let WsMessage::Binary(data) = &frame else {
            panic!("v1 frames are binary")
        };
        assert_eq!(read_u64(data, 0).unwrap(), 6);
        assert_eq!(read_u64(data, 8).unwrap(), 8 * 7);
        let (channel, msg) = decode(Framing::V1, &frame).unwrap().unwrap();
        assert_eq!(channel, "shell");
        assert_eq!(msg.content, json!({"code": "1+1"}));
        assert_eq!(msg.header["msg_id"], "a");
    }

    #[test]
    fn legacy_frames_round_trip_and_binary_buffers_decode() {
        let frame = encode(Framing::Legacy, "iopub", &sample());
        let (channel, msg) = decode(Framing::Legacy, &frame).unwrap().unwrap();
        assert_eq!(channel, "iopub");
        assert_eq!(msg.header["msg_type"], "execute_request");
        // A message with one buffer, as jupyter_server frames it.
        let json = br#"{"channel":"iopub","header":{"msg_type":"comm_msg"},"parent_header":{},"metadata":{},"content":{}}"#;
        let mut data = Vec::new();
        data.extend_from_slice(&2u32.to_be_bytes());
        data.extend_from_slice(&12u32.to_be_bytes());
        data.extend_from_slice(&(12 + json.len() as u32).to_be_bytes());
        data.extend_from_slice(json);
        data.extend_from_slice(b"\x00\x01");
        let (channel, msg) = decode(Framing::Legacy, &WsMessage::Binary(data.into()))
            .unwrap()
            .unwrap();
        assert_eq!(channel, "iopub");
        assert_eq!(msg.header["msg_type"], "comm_msg");
    }

    #[test]
    fn truncated_frames_are_errors_not_panics() {
        for bad in [&b""[..], &[6, 0, 0, 0, 0, 0, 0, 0][..], &[255; 9][..]] {
            assert!(decode(Framing::V1, &WsMessage::Binary(bad.to_vec().into())).is_err());
            assert!(decode(Framing::Legacy, &WsMessage::Binary(bad.to_vec().into())).is_err());
        }
    }
}
