//! Kernel wire decoding from arbitrary bytes: the input is split into frames at each
//! 0x1E byte. The frames are decoded as received (with and without a key: delimiter
//! search, frame counting, signature check), and the first four are also signed with
//! the key, as the kernel would, and decoded (the JSON parts, lossy UTF-8, lone
//! surrogate escapes). Never a panic or hang; a signed message is never rejected for
//! its signature or its framing; readable JSON reads exactly as serde_json reads it;
//! an unreadable message keeps what its header says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nbexec_kernel::fuzzing::{Decoded, decode, parse_lossy, signed_frames};
use serde_json::Value;

const KEY: &[u8] = b"fuzz-key";

fn strict(frame: &[u8]) -> Option<Value> {
    serde_json::from_slice(frame).ok()
}

fuzz_target!(|data: &[u8]| {
    let parts: Vec<&[u8]> = data.split(|b| *b == 0x1e).collect();
    let _ = decode(b"", &parts);
    let _ = decode(KEY, &parts);
    for p in &parts {
        // Readable JSON is read exactly as serde_json reads it; lossy reading
        // only ever adds what strict reading refused.
        match (strict(p), parse_lossy(p)) {
            (Some(a), Ok(b)) => assert_eq!(a, b),
            (Some(a), Err(e)) => panic!("strict JSON {a} refused: {e}"),
            (None, _) => {}
        }
    }
    if parts.len() < 4 {
        return;
    }
    let four = [parts[0], parts[1], parts[2], parts[3]];
    let frames = signed_frames(KEY, four, &parts[4..]);
    let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match decode(KEY, &frames) {
        Decoded::BadSignature | Decoded::Malformed => {
            panic!("a correctly signed, well-framed message was dropped")
        }
        Decoded::Message(m) => {
            assert_eq!(m.buffers.len(), parts.len() - 4);
            let header = parse_lossy(four[0]).expect("the header was read");
            assert_eq!(text(&header, "msg_type"), Some(m.msg_type.clone()));
            assert_eq!(m.header, header);
            if let Some(c) = strict(four[3]) {
                assert_eq!(m.content, c);
            }
        }
        Decoded::Unreadable {
            msg_type,
            parent_msg_id,
        } => {
            let all_read = four.iter().all(|p| parse_lossy(p).is_ok());
            let header = parse_lossy(four[0]).ok();
            let has_type = header.as_ref().and_then(|h| text(h, "msg_type")).is_some();
            assert!(!(all_read && has_type), "readable message called unreadable");
            assert_eq!(msg_type, header.as_ref().and_then(|h| text(h, "msg_type")));
            if let Ok(p) = parse_lossy(four[1]) {
                assert_eq!(parent_msg_id, text(&p, "msg_id").filter(|s| !s.is_empty()));
            }
        }
    }
});
