//! `nbexec serve` users, tokens and TLS: the users file made by `nbexec users`, the
//! ArcGIS token errors, the three token carriers, job ownership, and HTTPS.

mod common;

use common::*;

#[test]
fn users_cli_adds_lists_updates_and_removes_without_keeping_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.json");
    let out = add_user(&file, "alice", "admin", "s3cret pw");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("added user alice (admin)"),
        "{}",
        stderr(&out)
    );
    let out = add_user(&file, "bob", "user", "x");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("s3cret"),
        "no clear password in the file: {text}"
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["users"][0]["name"], "alice");
    assert!(
        json["users"][0]["password_hash"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$")
    );
    assert_eq!(mode_of(&file) & 0o777, 0o600);

    let list = nbexec()
        .args(["users", "list", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(stdout(&list), "alice\tadmin\nbob\tuser\n");

    // Adding again updates the role (and the password).
    let out = add_user(&file, "bob", "admin", "y");
    assert!(
        stderr(&out).contains("updated user bob (admin)"),
        "{}",
        stderr(&out)
    );
    let rm = nbexec()
        .args(["users", "rm", "alice", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(rm.status.code(), Some(0), "{}", stderr(&rm));
    let list = nbexec()
        .args(["users", "list", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(stdout(&list), "bob\tadmin\n");

    let hash = python_free_hash("pw");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
}

fn python_free_hash(password: &str) -> String {
    use std::io::Write;
    let mut child = nbexec()
        .args(["users", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn users_cli_bad_input_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.json");
    let out = add_user(&file, "al ice", "user", "pw");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: invalid user name"),
        "{}",
        stderr(&out)
    );
    let out = add_user(&file, "alice", "user", "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: no password"),
        "{}",
        stderr(&out)
    );
    assert!(!file.exists(), "nothing written on bad input");
    let out = add_user(&file, "alice", "root", "pw");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    std::fs::write(&file, "{not json").unwrap();
    let out = add_user(&file, "alice", "user", "pw");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.contains("not a valid users file"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{not json",
        "left as it was"
    );
    let rm = nbexec()
        .args(["users", "rm", "nobody", "-f"])
        .arg(dir.path().join("none.json"))
        .output()
        .unwrap();
    assert_eq!(rm.status.code(), Some(1));
    assert!(stderr(&rm).starts_with("error: "), "{}", stderr(&rm));
}
