//! Hostile traffic on IOPub, sent from inside the real ipykernel (a cell that writes
//! raw multipart frames on the kernel's own IOPub socket): truncated and malformed
//! messages, wrong signatures, wrong parents, invalid JSON and huge frames. Each must
//! be dropped (and counted) or delivered as appropriate, without crashing or wedging
//! the client; the next execute must work. Also: connection files are private and
//! every kernel gets its own key.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use nbexec_kernel::{Channel, ExecuteOptions, KernelClient, KernelEvent, LaunchOptions, Message};

const GRACE: Duration = Duration::from_secs(2);

/// Python helpers defined once per kernel: `send(frames)` writes raw frames on IOPub
/// (through ipykernel's IOPub thread, in order with the kernel's own output), and
/// `signed(...)` builds `[topic, <IDS|MSG>, signature, header, parent, metadata,
/// content]` signed with the kernel's real key.
const HELPERS: &str = r#"
import json, uuid
_k = get_ipython().kernel
_s = _k.session
D = b'<IDS|MSG>'
M = b'{}'

def send(frames):
    _k.iopub_socket.send_multipart(frames)

def header(msg_type='stream'):
    return json.dumps({'msg_id': uuid.uuid4().hex, 'msg_type': msg_type,
                       'session': _s.session, 'username': 'hostile',
                       'date': '2024-01-01T00:00:00.000000Z', 'version': '5.3'}).encode()

def parent(msg_id=None):
    if msg_id is None:
        msg_id = _k.get_parent()['header']['msg_id']
    return json.dumps({'msg_id': msg_id}).encode()

def stream(text):
    return json.dumps({'name': 'stdout', 'text': text}).encode()

def signed(h, p, m, c, *buffers):
    return [b'hostile', D, _s.sign([h, p, m, c]), h, p, m, c, *buffers]
"#;

/// Everything that arrived while one request ran.
struct Seen {
    reply: Message,
    /// IOPub messages whose parent is the request.
    mine: Vec<Message>,
    /// IOPub messages with any other parent, or none.
    others: Vec<Message>,
}

impl Seen {
    fn stdout(&self) -> String {
        self.mine
            .iter()
            .filter(|m| m.msg_type == "stream" && m.content["name"] == "stdout")
            .filter_map(|m| m.content["text"].as_str())
            .collect()
    }
}

/// Runs `code` and keeps every event until its reply and its `status: idle` arrive.
async fn run_seeing_all(k: &mut KernelClient, code: &str, limit: Duration) -> Seen {
    let id = k
        .execute(code, ExecuteOptions::default())
        .await
        .expect("execute sent");
    let deadline = tokio::time::Instant::now() + limit;
    let (mut reply, mut idle) = (None, false);
    let (mut mine, mut others) = (Vec::new(), Vec::new());
    while reply.is_none() || !idle {
        let ev = tokio::time::timeout_at(deadline, k.recv())
            .await
            .unwrap_or_else(|_| panic!("no reply and idle within {limit:?}: the client is wedged"));
        match ev {
            KernelEvent::ShellReply(m) if m.parent_msg_id.as_deref() == Some(id.as_str()) => {
                reply = Some(m);
            }
            KernelEvent::Iopub(m) if m.parent_msg_id.as_deref() == Some(id.as_str()) => {
                idle |= m.msg_type == "status" && m.content["execution_state"] == "idle";
                mine.push(m);
            }
            KernelEvent::Iopub(m) => others.push(m),
            KernelEvent::Died { stderr_tail, .. } => panic!("kernel died: {stderr_tail}"),
            _ => {}
        }
    }
    Seen {
        reply: reply.expect("loop ends with the reply"),
        mine,
        others,
    }
}

/// Starts a kernel with the helpers defined, and no message dropped so far.
async fn hostile_kernel(rt: &tempfile::TempDir) -> KernelClient {
    let mut k = start(rt).await;
    let seen = run_seeing_all(&mut k, HELPERS, Duration::from_secs(60)).await;
    assert_eq!(
        seen.reply.content["status"], "ok",
        "{:?}",
        seen.reply.content
    );
    assert_eq!(k.dropped_messages(), 0);
    k
}

/// The client still works: an execute with output completes promptly.
async fn still_works(k: &mut KernelClient) {
    let after = run_seeing_all(k, "print('good')\n6 * 7", Duration::from_secs(60)).await;
    assert_eq!(after.reply.content["status"], "ok");
    assert_eq!(after.stdout(), "good\n");
    let result = after
        .mine
        .iter()
        .find(|m| m.msg_type == "execute_result")
        .expect("an execute_result");
    assert_eq!(result.content["data"]["text/plain"], "42");
}

async fn finish(k: KernelClient) {
    let pid = k.pid().expect("we started it");
    k.shutdown(GRACE).await.expect("shutdown");
    assert_group_gone(pid);
}

#[tokio::test]
async fn truncated_undelimited_and_badly_signed_frames_are_dropped_and_counted() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = hostile_kernel(&rt).await;
    let seen = run_seeing_all(
        &mut k,
        r#"
good = signed(header(), parent(), M, stream('evil'))
sig, rest = good[2], good[3:]
bad = [
    [b'hostile'] + good[2:],               # no <IDS|MSG> delimiter
    [b'hostile', D, sig] + rest[:3],        # no content frame
    [b'hostile', D, sig] + rest[:2],        # no metadata or content
    [b'hostile', D, sig],                   # a signature and nothing else
    [b'hostile', D],                        # the delimiter and nothing else
    [D],
    [b''],
    [b'hostile', D, b'zz' * 32] + rest,     # a signature that is not hex
    [b'hostile', D, b'not hex!'] + rest,
    [b'hostile', D, sig[:-1]] + rest,       # odd length
    [b'hostile', D, b''] + rest,            # no signature
    [b'hostile', D, b'00' * 32] + rest,     # hex, but wrong
    [b'hostile', D, sig, rest[0], rest[1], rest[2], stream('tampered')],
]
for frames in bad:
    send(frames)
# A good message right after the garbage still gets through.
send(signed(header(), parent(), M, stream('after garbage\n')))
print(len(bad))
"#,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        seen.reply.content["status"], "ok",
        "{:?}",
        seen.reply.content
    );
    let stdout = seen.stdout();
    assert!(stdout.contains("after garbage\n"), "{stdout:?}");
    assert!(
        !stdout.contains("evil") && !stdout.contains("tampered"),
        "{stdout:?}"
    );
    let sent: u64 = stdout
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .expect("the cell printed how many it sent");
    assert_eq!(sent, 13);
    // The frames went out before the cell's idle status, on the same socket: every
    // one has been read (and dropped) by now.
    assert_eq!(k.dropped_messages(), sent);
    assert!(seen.others.is_empty(), "{:?}", seen.others);
    still_works(&mut k).await;
    assert_eq!(k.dropped_messages(), sent);
    finish(k).await;
}

#[tokio::test]
async fn signed_messages_with_a_wrong_or_unknown_parent_are_delivered_with_that_parent() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = hostile_kernel(&rt).await;
    let earlier = k
        .execute("1", ExecuteOptions::default())
        .await
        .expect("execute");
    let earlier_cell = collect(&mut k, &earlier, Duration::from_secs(60)).await;
    assert_eq!(earlier_cell.reply.content["status"], "ok");
    let code = format!(
        r#"
send(signed(header(), parent('not-a-request-id'), M, stream('stray unknown\n')))
send(signed(header(), parent({earlier:?}), M, stream('stray earlier\n')))
send(signed(header(), parent(''), M, stream('stray empty\n')))
send(signed(header(), b'null', M, stream('stray null\n')))
send(signed(header(), b'{{}}', M, stream('stray none\n')))
send(signed(header('status'), parent('not-a-request-id'), M, b'{{"execution_state": "idle"}}'))
print('done')
"#
    );
    let seen = run_seeing_all(&mut k, &code, Duration::from_secs(60)).await;
    assert_eq!(
        seen.reply.content["status"], "ok",
        "{:?}",
        seen.reply.content
    );
    assert_eq!(seen.stdout(), "done\n", "strays are not this cell's output");
    assert_eq!(
        k.dropped_messages(),
        0,
        "validly signed messages are not dropped"
    );
    let text = |m: &Message| m.content["text"].as_str().unwrap_or_default().to_owned();
    let strays: Vec<(Option<String>, String, String)> = seen
        .others
        .iter()
        .map(|m| (m.parent_msg_id.clone(), m.msg_type.clone(), text(m)))
        .collect();
    let unknown = Some("not-a-request-id".to_owned());
    assert_eq!(
        strays,
        vec![
            (unknown.clone(), "stream".into(), "stray unknown\n".into()),
            (
                Some(earlier.clone()),
                "stream".into(),
                "stray earlier\n".into()
            ),
            (None, "stream".into(), "stray empty\n".into()),
            (None, "stream".into(), "stray null\n".into()),
            (None, "stream".into(), "stray none\n".into()),
            (unknown, "status".into(), String::new()),
        ],
        "each stray is delivered once, in order, with the parent it claims"
    );
    still_works(&mut k).await;
    finish(k).await;
}

#[tokio::test]
async fn signed_messages_that_are_not_json_are_dropped_and_counted() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = hostile_kernel(&rt).await;
    let seen = run_seeing_all(
        &mut k,
        r#"
bad = [
    signed(header(), parent(), M, b'{"name": "stdout", "text": "trunc'),  # content cut short
    signed(header(), parent(), M, b'\xff\xfe not utf-8'),
    signed(header(), parent(), M, b''),
    signed(b'not json', parent(), M, stream('bad header')),
    signed(b'{"msg_id": "x"}', parent(), M, stream('no msg_type')),
    signed(header(), b'{"msg_id": ', M, stream('bad parent')),
    signed(header(), parent(), b'[1, 2', stream('bad metadata')),
]
for frames in bad:
    send(frames)
send(signed(header(), parent(), M, stream('valid after\n')))
print(len(bad))
"#,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        seen.reply.content["status"], "ok",
        "{:?}",
        seen.reply.content
    );
    let stdout = seen.stdout();
    assert_eq!(stdout, "valid after\n7\n");
    assert_eq!(k.dropped_messages(), 7);
    assert!(seen.others.is_empty(), "{:?}", seen.others);
    still_works(&mut k).await;
    assert_eq!(k.dropped_messages(), 7);
    finish(k).await;
}

#[tokio::test]
async fn fifty_megabyte_frames_are_delivered_or_dropped_without_wedging() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = hostile_kernel(&rt).await;
    let t0 = std::time::Instant::now();
    let seen = run_seeing_all(
        &mut k,
        r#"
N = 50_000_000
huge = stream('y' * N)
send(signed(header(), parent(), M, huge))                        # valid: delivered
send([b'hostile', D, b'00' * 32, header(), parent(), M, huge])   # wrongly signed: dropped
send(signed(header(), parent(), M, b'"' + b'y' * N))             # unterminated JSON: dropped
send(signed(header(), parent(), M, b'[' * N))                    # nested too deep: dropped
send(signed(header(), parent(), M, stream('with buffer\n'), b'\x00' * N))  # valid, a 50 MB buffer
del huge
print('sent')
"#,
        Duration::from_secs(300),
    )
    .await;
    let took = t0.elapsed();
    assert_eq!(
        seen.reply.content["status"], "ok",
        "{:?}",
        seen.reply.content
    );
    let streams: Vec<&Message> = seen
        .mine
        .iter()
        .filter(|m| m.msg_type == "stream")
        .collect();
    let big = streams
        .iter()
        .find(|m| m.content["text"].as_str().is_some_and(|t| t.len() > 1000))
        .expect("the valid 50 MB message was delivered");
    let text = big.content["text"].as_str().expect("text");
    assert_eq!(text.len(), 50_000_000);
    assert!(text.bytes().all(|b| b == b'y'));
    let with_buffer = streams
        .iter()
        .find(|m| m.content["text"] == "with buffer\n")
        .expect("the message with a 50 MB buffer was delivered");
    assert_eq!(with_buffer.buffers.len(), 1);
    assert_eq!(with_buffer.buffers[0].len(), 50_000_000);
    assert!(seen.stdout().ends_with("sent\n"));
    assert_eq!(k.dropped_messages(), 3);
    drop(seen);
    let t1 = std::time::Instant::now();
    still_works(&mut k).await;
    assert!(
        t1.elapsed() < Duration::from_secs(10),
        "the next execute took {:?} (the huge cell took {took:?})",
        t1.elapsed()
    );
    finish(k).await;
}

#[tokio::test]
async fn connection_files_are_private_and_every_kernel_has_its_own_key() {
    let rt = tempfile::tempdir().expect("tempdir");
    // A runtime directory that does not exist yet: the client creates it.
    let runtime = rt.path().join("runtime");
    let options = LaunchOptions {
        runtime_dir: Some(runtime.clone()),
        ..LaunchOptions::default()
    };
    let spec = python_spec();
    let mut a = KernelClient::start(&spec, &options).await.expect("start a");
    let mut b = KernelClient::start(&spec, &options).await.expect("start b");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    let mut keys = Vec::new();
    for k in [&mut a, &mut b] {
        let file = k.connection_file().to_path_buf();
        assert_eq!(file.parent(), Some(runtime.as_path()));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
        assert_eq!(mode(&runtime), 0o700, "{}", runtime.display());
        let info: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("JSON");
        assert_eq!(info["signature_scheme"], "hmac-sha256");
        let key = info["key"].as_str().expect("a key").to_owned();
        assert_eq!(key.len(), 64, "32 random bytes in hex");
        assert!(key.bytes().all(|c| c.is_ascii_hexdigit()));
        // The kernel signs with that key (not, say, an empty one).
        let seen = run_seeing_all(
            k,
            "print(get_ipython().kernel.session.key.decode())",
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(seen.stdout().trim_end(), key);
        keys.push(key);
    }
    assert_ne!(keys[0], keys[1], "two kernels share an HMAC key");
    // A message signed with the other kernel's key is dropped.
    let other_key = &keys[1];
    let code = format!(
        "{HELPERS}\n\
         import hmac, hashlib\n\
         h, p, c = header(), parent(), stream('signed with the other key')\n\
         sig = hmac.new({other_key:?}.encode(), h + p + M + c, hashlib.sha256).hexdigest().encode()\n\
         send([b'hostile', D, sig, h, p, M, c])"
    );
    let seen = run_seeing_all(&mut a, &code, Duration::from_secs(60)).await;
    assert_eq!(
        seen.reply.content["status"], "ok",
        "{:?}",
        seen.reply.content
    );
    assert_eq!(seen.stdout(), "");
    assert_eq!(a.dropped_messages(), 1);
    finish(a).await;
    finish(b).await;
}

/// Makes the kernel send its next message of `msg_type` (whose content satisfies
/// `when`) with a content frame that is not JSON: correctly signed, unreadable.
fn sabotage_next(msg_type: &str, when: &str) -> String {
    format!(
        r#"
_orig_send = _s.send
def _bad_send(stream, msg_or_type, content=None, *a, **kw):
    c = content if isinstance(content, dict) else {{}}
    if msg_or_type == {msg_type:?} and ({when}):
        _s.send = _orig_send
        content = b'{{"status": "ok", trunc'
    return _orig_send(stream, msg_or_type, content, *a, **kw)
_s.send = _bad_send
"#
    )
}

#[tokio::test]
async fn an_unreadable_execute_reply_is_delivered_so_the_request_can_end() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = hostile_kernel(&rt).await;
    let code = sabotage_next("execute_reply", "True") + "print('sabotaged')\n";
    let id = k
        .execute(&code, ExecuteOptions::default())
        .await
        .expect("execute sent");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (mut unreadable, mut idle) = (None, false);
    while unreadable.is_none() || !idle {
        let ev = tokio::time::timeout_at(deadline, k.recv())
            .await
            .expect("the unreadable reply and the idle arrive: the client is not wedged");
        match ev {
            KernelEvent::Unreadable {
                channel,
                msg_type,
                parent_msg_id,
                detail,
            } => unreadable = Some((channel, msg_type, parent_msg_id, detail)),
            KernelEvent::ShellReply(m) => panic!("the reply was readable: {m:?}"),
            KernelEvent::Iopub(m) if m.parent_msg_id.as_deref() == Some(id.as_str()) => {
                idle |= m.msg_type == "status" && m.content["execution_state"] == "idle";
            }
            KernelEvent::Died { stderr_tail, .. } => panic!("kernel died: {stderr_tail}"),
            _ => {}
        }
    }
    let (channel, msg_type, parent, detail) = unreadable.expect("loop ends with it");
    assert_eq!(channel, Channel::Shell);
    assert_eq!(msg_type.as_deref(), Some("execute_reply"));
    assert_eq!(parent.as_deref(), Some(id.as_str()));
    assert!(detail.starts_with("content: "), "{detail}");
    assert_eq!(k.dropped_messages(), 1);
    still_works(&mut k).await;
    finish(k).await;
}
