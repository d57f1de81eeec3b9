//! https gateways (the `tls` feature): a real Jupyter Kernel Gateway serving TLS
//! with a throwaway CA made by the test. The settings are those of Jupyter's
//! `GatewayClient`: `JUPYTER_GATEWAY_CA_CERTS`, `…_CLIENT_CERT`, `…_CLIENT_KEY`,
//! `…_VALIDATE_CERT`; they hold for the REST calls and the channels WebSocket alike
//! (a run needs both). A certificate problem is one `error:` line that names the
//! gateway and says what is wrong, exit 2, and no kernel left behind.

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::{Value, json};

fn run_cmd(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args).output().expect("nbexec runs")
}

fn error_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("error"))
        .map(str::to_owned)
        .collect()
}

/// Runs a one-cell notebook through `cmd`'s gateway: the exit code, the output
/// notebook (null if none was written) and the process output.
fn run_one(cmd: Command, dir: &std::path::Path, name: &str) -> (Option<i32>, Value, Output) {
    let input = write_nb(
        dir,
        &format!("{name}.ipynb"),
        &notebook(vec![code("print('over tls')", &[])]),
    );
    let output = dir.join(format!("{name}-out.ipynb"));
    let out = run_cmd(
        cmd,
        &["run", input.to_str().unwrap(), output.to_str().unwrap()],
    );
    let nb = if output.exists() {
        read_nb(&output)
    } else {
        Value::Null
    };
    (out.status.code(), nb, out)
}

#[test]
fn an_https_gateway_runs_notebooks_trusting_the_ca_of_jupyter_gateway_ca_certs() {
    let pki = TestPki::generate();
    let gw = KernelGateway::start_tls(&pki, false);
    assert!(gw.url.starts_with("https://"));
    let dir = tempfile::tempdir().unwrap();

    // REST and WebSocket over TLS, the CA from JUPYTER_GATEWAY_CA_CERTS.
    let (code, nb, out) = run_one(gw.nbexec(), dir.path(), "trusted");
    assert_eq!(code, Some(0), "{}\n{}", stderr(&out), gw.log_text());
    assert_eq!(stream_text(&nb["cells"][0], "stdout"), "over tls\n");
    assert_eq!(nb["metadata"]["nbexec"]["gateway"], json!(gw.url));
    let out = run_cmd(gw.nbexec(), &["kernels"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("python3"), "{}", stdout(&out));

    // JUPYTER_GATEWAY_VALIDATE_CERT=false takes the certificate unchecked.
    let mut cmd = gw.nbexec();
    cmd.env_remove("JUPYTER_GATEWAY_CA_CERTS")
        .env("JUPYTER_GATEWAY_VALIDATE_CERT", "false");
    let (code, nb, out) = run_one(cmd, dir.path(), "unchecked");
    assert_eq!(code, Some(0), "{}", stderr(&out));
    assert_eq!(stream_text(&nb["cells"][0], "stdout"), "over tls\n");
    gw.assert_no_kernels();
}

#[test]
fn a_gateway_certificate_nbexec_does_not_trust_is_one_error_line_and_exit_2() {
    let pki = TestPki::generate();
    let gw = KernelGateway::start_tls(&pki, false);
    let dir = tempfile::tempdir().unwrap();
    let untrusted = format!(
        "error: gateway {}: its certificate is not signed by an authority nbexec trusts",
        gw.url
    );
    // The wrong CA file, then none at all (the system's authorities).
    for (name, ca) in [("wrong-ca", Some(&pki.other_ca)), ("system-ca", None)] {
        let mut cmd = gw.nbexec();
        match ca {
            Some(ca) => cmd.env("JUPYTER_GATEWAY_CA_CERTS", ca),
            None => cmd.env_remove("JUPYTER_GATEWAY_CA_CERTS"),
        };
        let (code, nb, out) = run_one(cmd, dir.path(), name);
        assert_eq!(code, Some(2), "{name}: {}", stderr(&out));
        let err = error_lines(&out);
        assert_eq!(err.len(), 1, "{name}: {}", stderr(&out));
        assert!(err[0].starts_with(&untrusted), "{name}: {}", err[0]);
        assert!(err[0].contains("JUPYTER_GATEWAY_CA_CERTS"), "{}", err[0]);
        // The output notebook is written, as when a kernel cannot start.
        assert_eq!(
            nb["metadata"]["nbexec"]["status"],
            json!("kernel_unavailable")
        );
    }
    // A CA file that is not there is named.
    let mut cmd = gw.nbexec();
    cmd.env("JUPYTER_GATEWAY_CA_CERTS", dir.path().join("missing.pem"));
    let (code, _, out) = run_one(cmd, dir.path(), "missing-ca");
    assert_eq!(code, Some(2), "{}", stderr(&out));
    let err = error_lines(&out);
    assert_eq!(err.len(), 1, "{}", stderr(&out));
    assert!(
        err[0].contains("JUPYTER_GATEWAY_CA_CERTS=") && err[0].contains("missing.pem"),
        "{}",
        err[0]
    );
    gw.assert_no_kernels();
}

#[test]
fn a_gateway_that_asks_for_a_client_certificate_gets_the_configured_one() {
    let pki = TestPki::generate();
    let gw = KernelGateway::start_tls(&pki, true);
    let dir = tempfile::tempdir().unwrap();

    let (code, nb, out) = run_one(gw.nbexec(), dir.path(), "with-cert");
    assert_eq!(code, Some(0), "{}\n{}", stderr(&out), gw.log_text());
    assert_eq!(stream_text(&nb["cells"][0], "stdout"), "over tls\n");

    // Without one, the gateway refuses the connection: said in one line.
    let mut cmd = gw.nbexec();
    cmd.env_remove("JUPYTER_GATEWAY_CLIENT_CERT")
        .env_remove("JUPYTER_GATEWAY_CLIENT_KEY");
    let (code, _, out) = run_one(cmd, dir.path(), "without-cert");
    assert_eq!(code, Some(2), "{}", stderr(&out));
    let err = error_lines(&out);
    assert_eq!(err.len(), 1, "{}", stderr(&out));
    assert!(
        err[0].starts_with(&format!("error: gateway {}: ", gw.url))
            && err[0].contains("client certificate"),
        "{}",
        err[0]
    );

    // A key without its certificate is a settings error, named.
    let mut cmd = gw.nbexec();
    cmd.env_remove("JUPYTER_GATEWAY_CLIENT_CERT");
    let (code, _, out) = run_one(cmd, dir.path(), "key-only");
    assert_eq!(code, Some(2), "{}", stderr(&out));
    let err = error_lines(&out);
    assert_eq!(err.len(), 1, "{}", stderr(&out));
    assert!(err[0].contains("JUPYTER_GATEWAY_CLIENT_KEY"), "{}", err[0]);
    gw.assert_no_kernels();
}
