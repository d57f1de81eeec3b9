//! Turning a kernelspec into a command line and environment, as jupyter_client does.

use std::path::Path;

use crate::KernelSpec;

/// ipykernel's sqlite history costs ~1.5 ms per cell and is useless for a
/// batch run; nbclient passes the same flag.
const IPYKERNEL_MEMORY_HISTORY: &str = "--HistoryManager.hist_file=:memory:";

/// The command line to run: placeholders filled, `~` expanded, a bare
/// `python`/`python3` resolved to the spec's own environment, then the
/// ipykernel history flag and `extra_args`.
pub(crate) fn kernel_argv(
    spec: &KernelSpec,
    connection_file: &Path,
    extra_args: &[String],
) -> Vec<String> {
    let prefix = spec
        .prefix()
        .or_else(|| {
            ["VIRTUAL_ENV", "CONDA_PREFIX"]
                .iter()
                .find_map(|k| std::env::var_os(k).filter(|v| !v.is_empty()))
                .map(Into::into)
        })
        .map(|p: std::path::PathBuf| p.display().to_string());
    let resource_dir = spec.resource_dir.display().to_string();
    // jupyter_client passes the real path so a kernel sees a stable name.
    let conn = std::fs::canonicalize(connection_file)
        .unwrap_or_else(|_| connection_file.to_path_buf())
        .display()
        .to_string();
    let lookup = |name: &str| -> Option<String> {
        match name {
            "connection_file" => Some(conn.clone()),
            "resource_dir" => Some(resource_dir.clone()),
            "prefix" => prefix.clone(),
            _ => None,
        }
    };
    let mut argv: Vec<String> = spec
        .argv
        .iter()
        .map(|a| expand_user(&fill_placeholders(a, &lookup)))
        .collect();

    // jupyter_client replaces a bare `python` with its own sys.executable; our
    // equivalent is the interpreter of the environment the spec lives in, so a
    // venv's kernelspec works without the venv on PATH.
    if let (Some(first), Some(env_prefix)) = (argv.first_mut(), spec.prefix())
        && matches!(first.as_str(), "python" | "python3")
    {
        let exe = env_prefix.join("bin").join(first.as_str());
        if exe.is_file() {
            *first = exe.display().to_string();
        }
    }

    let is_ipykernel = argv.iter().any(|a| {
        a == "ipykernel_launcher" || a == "ipykernel" || a.ends_with("/ipykernel_launcher.py")
    });
    let has_hist = argv
        .iter()
        .chain(extra_args)
        .any(|a| a.contains("HistoryManager.hist_file"));
    if is_ipykernel && !has_hist {
        argv.push(IPYKERNEL_MEMORY_HISTORY.to_owned());
    }
    argv.extend(extra_args.iter().cloned());
    argv
}

/// Environment changes for the kernel: `(set, remove)`.
pub(crate) fn kernel_env(
    spec: &KernelSpec,
    extra: &[(String, String)],
) -> (Vec<(String, String)>, Vec<String>) {
    let lookup = |name: &str| std::env::var(name).ok();
    // ipykernel's parent poller exits the kernel if this process goes away
    // (a second line of defence beside PR_SET_PDEATHSIG, and the only one
    // off Linux). First, so that the spec or the caller can override it.
    let mut set = vec![("JPY_PARENT_PID".to_owned(), std::process::id().to_string())];
    set.extend(
        spec.env
            .iter()
            .map(|(k, v)| (k.clone(), substitute_env(v, &lookup))),
    );
    set.extend(extra.iter().cloned());
    let mut remove = Vec::new();
    if spec.language.to_lowercase().starts_with("python") {
        // As jupyter_client: an inherited PYTHONEXECUTABLE breaks the kernel.
        remove.push("PYTHONEXECUTABLE".to_owned());
    }
    (set, remove)
}

/// Replaces `{name}` (name = `[A-Za-z0-9_]+`) when `lookup` knows it; leaves
/// anything else as written, like jupyter_client's `format_kernel_cmd`.
pub(crate) fn fill_placeholders(arg: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let closed = after[name_len..].starts_with('}');
        match (closed && !name.is_empty()).then(|| lookup(name)).flatten() {
            Some(value) => {
                out.push_str(&value);
                rest = &after[name_len + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Python's `string.Template(v).safe_substitute(os.environ)`, which
/// jupyter_client applies to kernelspec `env` values: `$$` is `$`,
/// `$NAME` and `${NAME}` are replaced when set, anything else stays.
pub(crate) fn substitute_env(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let is_start = |c: char| c == '_' || c.is_ascii_alphabetic();
    let is_cont = |c: char| c == '_' || c.is_ascii_alphanumeric();
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end)
                    if braced[..end].starts_with(is_start)
                        && braced[..end].chars().all(is_cont) =>
                {
                    (&braced[..end], end + 2)
                }
                _ => ("", 0),
            }
        } else if after.starts_with(is_start) {
            let len = after.find(|c: char| !is_cont(c)).unwrap_or(after.len());
            (&after[..len], len)
        } else {
            ("", 0)
        };
        match (!name.is_empty()).then(|| lookup(name)).flatten() {
            Some(v) => {
                out.push_str(&v);
                rest = &after[consumed..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `~` and `~/...` become the home directory, as jupyter_client's
/// `os.path.expanduser` does for every argument.
fn expand_user(arg: &str) -> String {
    let home = || std::env::var("HOME").ok().filter(|h| !h.is_empty());
    if arg == "~" {
        return home().unwrap_or_else(|| arg.to_owned());
    }
    match (arg.strip_prefix("~/"), home()) {
        (Some(rest), Some(h)) => format!("{}/{rest}", h.trim_end_matches('/')),
        _ => arg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InterruptMode;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn spec(argv: &[&str], dir: &Path) -> KernelSpec {
        KernelSpec {
            name: "k".into(),
            display_name: "K".into(),
            language: "python".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            interrupt_mode: InterruptMode::Signal,
            resource_dir: dir.to_path_buf(),
            metadata: serde_json::Value::Null,
        }
    }

    #[test]
    fn placeholders_are_filled_and_unknown_ones_kept() {
        let lookup = |n: &str| (n == "a").then(|| "X".to_string());
        assert_eq!(fill_placeholders("-f={a}", &lookup), "-f=X");
        assert_eq!(fill_placeholders("{b}{a}{", &lookup), "{b}X{");
        assert_eq!(fill_placeholders("{}{a-}", &lookup), "{}{a-}");
    }

    #[test]
    fn env_values_substitute_like_python_string_template() {
        let lookup = |n: &str| match n {
            "HOME" => Some("/h".to_string()),
            "P" => Some("p".to_string()),
            _ => None,
        };
        assert_eq!(substitute_env("${HOME}/x:$P", &lookup), "/h/x:p");
        assert_eq!(
            substitute_env("$$HOME $NOPE ${NOPE} $1 ${1x}", &lookup),
            "$HOME $NOPE ${NOPE} $1 ${1x}"
        );
        assert_eq!(substitute_env("a$", &lookup), "a$");
        assert_eq!(substitute_env("$Px", &lookup), "$Px");
    }

    #[test]
    fn a_venv_spec_uses_the_venvs_python_and_gets_memory_history() {
        let root = tempfile::tempdir().expect("tempdir");
        let kdir = root.path().join("share/jupyter/kernels/k");
        std::fs::create_dir_all(&kdir).expect("mkdir");
        std::fs::create_dir_all(root.path().join("bin")).expect("mkdir");
        std::fs::write(root.path().join("bin/python"), "").expect("touch");
        let s = spec(
            &[
                "python",
                "-m",
                "ipykernel_launcher",
                "-f",
                "{connection_file}",
                "{prefix}",
                "{resource_dir}",
            ],
            &kdir,
        );
        let argv = kernel_argv(&s, Path::new("/nonexistent/c.json"), &["--x".into()]);
        assert_eq!(
            argv,
            vec![
                root.path().join("bin/python").display().to_string(),
                "-m".into(),
                "ipykernel_launcher".into(),
                "-f".into(),
                "/nonexistent/c.json".into(),
                root.path().display().to_string(),
                kdir.display().to_string(),
                IPYKERNEL_MEMORY_HISTORY.into(),
                "--x".into(),
            ]
        );
    }

    #[test]
    fn other_kernels_get_no_ipykernel_flag_and_keep_their_argv0() {
        let s = spec(&["python3", "-c", "pass"], &PathBuf::from("/elsewhere/k"));
        assert_eq!(
            kernel_argv(&s, Path::new("/c.json"), &[]),
            vec!["python3", "-c", "pass"]
        );
    }
}
