//! The Jupyter wire format: `[identities..., "<IDS|MSG>", signature, header,
//! parent_header, metadata, content, buffers...]`, signed with HMAC-SHA256.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

/// The protocol version written into every header we send.
pub(crate) const PROTOCOL_VERSION: &str = "5.4";

const DELIMITER: &[u8] = b"<IDS|MSG>";

/// One Jupyter message, received from a kernel.
///
/// `header`, `parent_header`, `metadata` and `content` are kept as raw JSON:
/// typed decoding rejects some valid traffic (an `execute_result` with a null
/// count, a `dataresource` bundle without `schema`), and numbers must keep
/// their exact text.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `header.msg_id`.
    pub msg_id: String,
    /// `header.msg_type`, e.g. `stream`, `execute_reply`.
    pub msg_type: String,
    /// `parent_header.msg_id`: the request this message answers, if any.
    pub parent_msg_id: Option<String>,
    /// The whole header.
    pub header: Value,
    /// The whole parent header (`{}` when there is none).
    pub parent_header: Value,
    /// The metadata dict.
    pub metadata: Value,
    /// The content dict.
    pub content: Value,
    /// Binary buffers that followed the content frame.
    pub buffers: Vec<Bytes>,
}

/// Why a multipart frame set was not turned into a [`Message`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Unsigned or wrongly signed: dropped and counted.
    BadSignature,
    /// Not a Jupyter message at all (no delimiter, missing frames).
    Malformed(String),
    /// Correctly signed, so from the kernel, but a part is not JSON even after
    /// lossy decoding: what could be read of its header is kept so the caller
    /// can still tell which request it belonged to.
    Unreadable {
        /// `header.msg_type`, when the header could be read.
        msg_type: Option<String>,
        /// `parent_header.msg_id`, when the parent header could be read.
        parent_msg_id: Option<String>,
        /// What could not be read, and why.
        detail: String,
    },
}

/// Signing state shared by every socket of one connection.
#[derive(Clone)]
pub(crate) struct Session {
    /// `None` when the connection's key is empty: Jupyter then neither signs
    /// nor checks signatures.
    mac: Option<Hmac<Sha256>>,
    session_id: String,
}

impl Session {
    pub(crate) fn new(key: &[u8]) -> Session {
        let mac = if key.is_empty() {
            None
        } else {
            // HMAC accepts keys of any length, so this cannot fail.
            Hmac::<Sha256>::new_from_slice(key).ok()
        };
        Session {
            mac,
            session_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub(crate) fn sign(&self, parts: [&[u8]; 4]) -> String {
        match &self.mac {
            None => String::new(),
            Some(mac) => {
                let mut mac = mac.clone();
                for p in parts {
                    mac.update(p);
                }
                hex(&mac.finalize().into_bytes())
            }
        }
    }

    /// Builds the frames of a request (no identity prefix: DEALER sockets add
    /// none) and returns them with the new message's id.
    pub(crate) fn request(
        &self,
        msg_type: &str,
        content: Value,
        parent_header: Option<&Value>,
    ) -> (String, Vec<Bytes>) {
        let msg_id = uuid::Uuid::new_v4().simple().to_string();
        let mut header = Map::new();
        header.insert("msg_id".into(), Value::from(msg_id.as_str()));
        header.insert("msg_type".into(), Value::from(msg_type));
        header.insert("session".into(), Value::from(self.session_id.as_str()));
        header.insert("username".into(), Value::from("nbexec"));
        header.insert(
            "date".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        header.insert("version".into(), Value::from(PROTOCOL_VERSION));
        let header = to_bytes(&Value::Object(header));
        let parent = parent_header.map_or_else(|| Bytes::from_static(b"{}"), to_bytes);
        let metadata = Bytes::from_static(b"{}");
        let content = to_bytes(&content);
        let sig = self.sign([&header, &parent, &metadata, &content]);
        let frames = vec![
            Bytes::from_static(DELIMITER),
            Bytes::from(sig),
            header,
            parent,
            metadata,
            content,
        ];
        (msg_id, frames)
    }

    /// Splits, verifies and decodes a received frame set.
    pub(crate) fn decode(&self, frames: Vec<Bytes>) -> Result<Message, Rejected> {
        let delim = frames
            .iter()
            .position(|f| f.as_ref() == DELIMITER)
            .ok_or_else(|| Rejected::Malformed("no <IDS|MSG> delimiter".into()))?;
        let mut rest = frames.into_iter().skip(delim + 1);
        let mut next = || {
            rest.next()
                .ok_or(Rejected::Malformed("too few frames".into()))
        };
        let signature = next()?;
        let header = next()?;
        let parent = next()?;
        let metadata = next()?;
        let content = next()?;
        let buffers: Vec<Bytes> = rest.collect();

        if let Some(mac) = &self.mac {
            let expected = unhex(&signature).ok_or(Rejected::BadSignature)?;
            let mut mac = mac.clone();
            for p in [&header, &parent, &metadata, &content] {
                mac.update(p);
            }
            // `verify_slice` compares in constant time.
            mac.verify_slice(&expected)
                .map_err(|_| Rejected::BadSignature)?;
        }

        let header = parse_lossy(&header).map_err(|e| format!("header: {e}"));
        let parent_header = parse_lossy(&parent).map_err(|e| format!("parent_header: {e}"));
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let msg_type = header.as_ref().ok().and_then(|h| text(h, "msg_type"));
        let parent_msg_id = parent_header
            .as_ref()
            .ok()
            .and_then(|p| text(p, "msg_id"))
            .filter(|s| !s.is_empty());
        let metadata = parse_lossy(&metadata).map_err(|e| format!("metadata: {e}"));
        let content = parse_lossy(&content).map_err(|e| format!("content: {e}"));
        let (header, parent_header, metadata, content) =
            match (header, parent_header, metadata, content) {
                (Ok(h), Ok(p), Ok(m), Ok(c)) if msg_type.is_some() => (h, p, m, c),
                (h, p, m, c) => {
                    let detail = [h.err(), p.err(), m.err(), c.err()]
                        .into_iter()
                        .flatten()
                        .next()
                        .unwrap_or_else(|| "header has no msg_type".into());
                    return Err(Rejected::Unreadable {
                        msg_type,
                        parent_msg_id,
                        detail,
                    });
                }
            };
        let msg_id = text(&header, "msg_id").unwrap_or_default();
        let msg_type = msg_type.unwrap_or_default();
        Ok(Message {
            msg_id,
            msg_type,
            parent_msg_id,
            header,
            parent_header,
            metadata,
            content,
            buffers,
        })
    }
}

/// Parses one JSON frame the way Jupyter's Python side would read it: bytes
/// that are not UTF-8 (ipykernel sends file names and other text that Python
/// holds as lone surrogates raw) become U+FFFD, as with `errors="replace"`, and
/// so do `\uXXXX` escapes of unpaired surrogates, which Python's JSON accepts.
pub(crate) fn parse_lossy(frame: &[u8]) -> Result<Value, String> {
    let first = match serde_json::from_slice(frame) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let text = String::from_utf8_lossy(frame);
    let repaired = replace_lone_surrogates(&text);
    if matches!(text, std::borrow::Cow::Borrowed(_)) && repaired.is_none() {
        return Err(first.to_string());
    }
    let text = repaired.map_or(text, std::borrow::Cow::Owned);
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// `text` with every `\uD800`..`\uDFFF` escape that is not half of a valid
/// pair replaced by `\uFFFD`; `None` when there is none.
fn replace_lone_surrogates(text: &str) -> Option<String> {
    fn escape_at(b: &[u8], i: usize) -> Option<u16> {
        let hex = b.get(i..i + 6)?;
        if hex[0] != b'\\' || hex[1] != b'u' {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()
    }
    let b = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(unit) = escape_at(b, i) else {
            // Any other escape is two bytes (`\"`, `\\`...); skipping both
            // keeps an escaped backslash from starting a false `\u`.
            i += 2;
            continue;
        };
        let low = |u: u16| (0xDC00..=0xDFFF).contains(&u);
        if (0xD800..=0xDBFF).contains(&unit) && escape_at(b, i + 6).is_some_and(low) {
            i += 12;
        } else if (0xD800..=0xDFFF).contains(&unit) {
            let o = out.get_or_insert_with(String::new);
            o.push_str(&text[copied..i]);
            o.push_str("\\ufffd");
            i += 6;
            copied = i;
        } else {
            i += 6;
        }
    }
    out.map(|mut o| {
        o.push_str(&text[copied..]);
        o
    })
}

fn to_bytes(v: &Value) -> Bytes {
    // Serialising a `Value` cannot fail: its keys are strings.
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// Lower-case hex, as Jupyter writes signatures and keys (and as the rest of nbexec
/// writes digests and tokens).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// The bytes of hex text (either case); `None` if it is not hex.
pub fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply_frames(s: &Session, identity: &[u8]) -> Vec<Bytes> {
        let (_, mut frames) = s.request(
            "execute_reply",
            json!({"status": "ok", "n": 12345678901234567890123_u128.to_string()}),
            Some(&json!({"msg_id": "abc"})),
        );
        frames.insert(0, Bytes::copy_from_slice(identity));
        frames.push(Bytes::from_static(b"\x00\x01buffer"));
        frames
    }

    #[test]
    fn a_signed_message_round_trips_with_identities_and_buffers() {
        let s = Session::new(b"secret");
        let m = s.decode(reply_frames(&s, b"ident")).expect("decodes");
        assert_eq!(m.msg_type, "execute_reply");
        assert_eq!(m.parent_msg_id.as_deref(), Some("abc"));
        assert_eq!(m.content["status"], "ok");
        assert_eq!(m.buffers, vec![Bytes::from_static(b"\x00\x01buffer")]);
        assert_eq!(m.header["session"], m.header["session"]);
        assert_eq!(m.header["version"], PROTOCOL_VERSION);
    }

    #[test]
    fn wrong_key_missing_signature_and_tampering_are_rejected() {
        let good = Session::new(b"secret");
        let bad = Session::new(b"wrong");
        assert_eq!(
            good.decode(reply_frames(&bad, b"i")),
            Err(Rejected::BadSignature)
        );
        let mut unsigned = reply_frames(&good, b"i");
        unsigned[2] = Bytes::new();
        assert_eq!(good.decode(unsigned), Err(Rejected::BadSignature));
        let mut tampered = reply_frames(&good, b"i");
        tampered[6] = Bytes::from_static(b"{\"status\": \"error\"}");
        assert_eq!(good.decode(tampered), Err(Rejected::BadSignature));
        let mut not_hex = reply_frames(&good, b"i");
        not_hex[2] = Bytes::from_static(b"zz");
        assert_eq!(good.decode(not_hex), Err(Rejected::BadSignature));
    }

    #[test]
    fn an_empty_key_means_no_signing_and_no_checking() {
        let s = Session::new(b"");
        let (_, frames) = s.request("kernel_info_request", json!({}), None);
        assert_eq!(frames[1], Bytes::new());
        let m = s.decode(frames).expect("decodes");
        assert_eq!(m.parent_msg_id, None);
    }

    #[test]
    fn frames_without_a_delimiter_are_malformed() {
        let s = Session::new(b"k");
        assert!(matches!(
            s.decode(vec![Bytes::from_static(b"x")]),
            Err(Rejected::Malformed(_))
        ));
    }

    #[test]
    fn bytes_that_are_not_utf8_and_lone_surrogates_become_replacement_characters() {
        let s = Session::new(b"k");
        let (_, mut frames) = s.request("stream", json!({}), Some(&json!({"msg_id": "p"})));
        // ipykernel sends a surrogate-escaped file name as its raw byte.
        frames[5] = Bytes::from_static(b"{\"name\": \"stdout\", \"text\": \"caf\xe9.csv\"}");
        frames[1] = Bytes::from(s.sign([&frames[2], &frames[3], &frames[4], &frames[5]]));
        let m = s.decode(frames).expect("decodes");
        assert_eq!(m.content["text"], "caf\u{fffd}.csv");
        assert_eq!(
            parse_lossy(br#"["\udce9", "\ud83d\ude00", "\\udce9", "\ud800x", "\udc00\ud800"]"#),
            Ok(json!([
                "\u{fffd}",
                "\u{1f600}",
                "\\udce9",
                "\u{fffd}x",
                "\u{fffd}\u{fffd}"
            ]))
        );
        assert!(parse_lossy(b"{\"a\": ").is_err());
    }

    #[test]
    fn a_signed_message_that_is_not_json_keeps_what_could_be_read() {
        let s = Session::new(b"k");
        let (_, mut frames) = s.request("execute_reply", json!({}), Some(&json!({"msg_id": "p"})));
        frames[5] = Bytes::from_static(b"{\"status\": \"ok\", trunc");
        frames[1] = Bytes::from(s.sign([&frames[2], &frames[3], &frames[4], &frames[5]]));
        match s.decode(frames) {
            Err(Rejected::Unreadable {
                msg_type,
                parent_msg_id,
                detail,
            }) => {
                assert_eq!(msg_type.as_deref(), Some("execute_reply"));
                assert_eq!(parent_msg_id.as_deref(), Some("p"));
                assert!(detail.starts_with("content: "), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex(b"00abFF"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex(b"0"), None);
    }
}
