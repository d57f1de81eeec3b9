//! Kernelspec discovery: the same directories, in the same order, as Jupyter.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::KernelError;

/// How a kernel wants to be interrupted (`interrupt_mode` in `kernel.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InterruptMode {
    /// SIGINT to the kernel's process group (Jupyter's default).
    #[default]
    Signal,
    /// An `interrupt_request` on the control channel.
    Message,
}

impl InterruptMode {
    /// The spelling used in `kernel.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            InterruptMode::Signal => "signal",
            InterruptMode::Message => "message",
        }
    }
}

/// One kernelspec: a `kernel.json` and the directory holding it.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSpec {
    /// The kernel's name: its directory's name, lower-cased (as Jupyter does).
    pub name: String,
    /// Human-readable name.
    pub display_name: String,
    /// The language the kernel runs (`python`, `R`, ...); may be empty.
    pub language: String,
    /// The command line, with `{connection_file}`, `{resource_dir}` and `{prefix}`
    /// placeholders still in it.
    pub argv: Vec<String>,
    /// Extra environment for the kernel; values may reference `$VAR`/`${VAR}`.
    pub env: BTreeMap<String, String>,
    /// How to interrupt it.
    pub interrupt_mode: InterruptMode,
    /// The directory holding `kernel.json` (and logos, etc.).
    pub resource_dir: PathBuf,
    /// The `metadata` object of `kernel.json` (`{}` when absent).
    pub metadata: Value,
}

impl KernelSpec {
    /// The installation prefix the spec lives in, when it sits at
    /// `<prefix>/share/jupyter/kernels/<name>` (a venv's or conda env's spec).
    pub fn prefix(&self) -> Option<PathBuf> {
        let kernels = self.resource_dir.parent()?;
        let jupyter = kernels.parent()?;
        let share = jupyter.parent()?;
        let names_match = kernels.file_name()? == "kernels"
            && jupyter.file_name()? == "jupyter"
            && share.file_name()? == "share";
        if names_match {
            share.parent().map(Path::to_path_buf)
        } else {
            None
        }
    }

    /// The spec as `jupyter kernelspec list --json` shows it:
    /// `{"resource_dir": ..., "spec": {argv, env, display_name, language, interrupt_mode, metadata}}`.
    pub fn to_json(&self) -> Value {
        let mut spec = Map::new();
        spec.insert("argv".into(), Value::from(self.argv.clone()));
        let env: Map<String, Value> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        spec.insert("env".into(), Value::Object(env));
        spec.insert(
            "display_name".into(),
            Value::from(self.display_name.as_str()),
        );
        spec.insert("language".into(), Value::from(self.language.as_str()));
        spec.insert(
            "interrupt_mode".into(),
            Value::from(self.interrupt_mode.as_str()),
        );
        spec.insert("metadata".into(), self.metadata.clone());
        let mut out = Map::new();
        out.insert(
            "resource_dir".into(),
            Value::from(self.resource_dir.display().to_string()),
        );
        out.insert("spec".into(), Value::Object(spec));
        Value::Object(out)
    }
}

/// `{"kernelspecs": {name: spec.to_json()}}`, the shape of
/// `jupyter kernelspec list --json`, for `nbexec kernels --json`.
pub fn kernelspecs_json(specs: &[KernelSpec]) -> Value {
    let map: Map<String, Value> = specs
        .iter()
        .map(|s| (s.name.clone(), s.to_json()))
        .collect();
    let mut out = Map::new();
    out.insert("kernelspecs".into(), Value::Object(map));
    Value::Object(out)
}

/// The `kernels` directories Jupyter searches, in priority order (earlier wins):
/// each `JUPYTER_PATH` entry, the user data dir (`JUPYTER_DATA_DIR`, else
/// `$XDG_DATA_HOME/jupyter`, else `~/.local/share/jupyter`), `$VIRTUAL_ENV/share/jupyter`,
/// `$CONDA_PREFIX/share/jupyter`, `/usr/local/share/jupyter`, `/usr/share/jupyter`;
/// each with `/kernels` appended. Duplicates are removed.
pub fn kernelspec_search_dirs() -> Vec<PathBuf> {
    search_dirs_from(|k| std::env::var_os(k))
}

pub(crate) fn search_dirs_from(var: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    let mut data_dirs: Vec<PathBuf> = Vec::new();
    if let Some(path) = set("JUPYTER_PATH") {
        data_dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Some(d) = set("JUPYTER_DATA_DIR") {
        data_dirs.push(PathBuf::from(d));
    } else if let Some(xdg) = set("XDG_DATA_HOME") {
        data_dirs.push(PathBuf::from(xdg).join("jupyter"));
    } else if let Some(home) = set("HOME") {
        data_dirs.push(PathBuf::from(home).join(".local/share/jupyter"));
    }
    for env_prefix in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(p) = set(env_prefix) {
            data_dirs.push(PathBuf::from(p).join("share/jupyter"));
        }
    }
    data_dirs.push(PathBuf::from("/usr/local/share/jupyter"));
    data_dirs.push(PathBuf::from("/usr/share/jupyter"));

    let mut out: Vec<PathBuf> = Vec::new();
    for d in data_dirs {
        let k = d.join("kernels");
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Every kernelspec found in [`kernelspec_search_dirs`] (the first directory
/// wins for each name), sorted by name, plus a `python3` spec for a Python on
/// `PATH` that has ipykernel when no directory provides one.
///
/// Specs whose `kernel.json` cannot be parsed are skipped (use
/// [`find_kernelspec`] to see why one fails).
pub fn find_kernelspecs() -> Vec<KernelSpec> {
    let mut specs = find_kernelspecs_in(&kernelspec_search_dirs());
    if !specs.iter().any(|s| s.name == NATIVE_KERNEL)
        && let Some(py) = python3_on_path()
    {
        specs.push(py);
        specs.sort_by(|a, b| a.name.cmp(&b.name));
    }
    specs
}

/// The kernelspec called `name` (case-insensitive, like Jupyter), searched in
/// [`kernelspec_search_dirs`]; `python3` falls back to a Python on `PATH`
/// that can `import ipykernel`, and `python` means `python3` when no spec is
/// named `python`.
pub fn find_kernelspec(name: &str) -> Result<KernelSpec, KernelError> {
    match find_kernelspec_unaliased(name) {
        // As jupyter_client: `python` means the native kernel (papermill's own
        // notebooks say `python`), unless a spec is literally named so.
        Err(e @ KernelError::NotFound { .. }) if name.eq_ignore_ascii_case(PYTHON_ALIAS) => {
            find_kernelspec_unaliased(NATIVE_KERNEL).map_err(|_| e)
        }
        other => other,
    }
}

/// The kernel name that stands for [`NATIVE_KERNEL`] when no spec has it.
const PYTHON_ALIAS: &str = "python";

fn find_kernelspec_unaliased(name: &str) -> Result<KernelSpec, KernelError> {
    let dirs = kernelspec_search_dirs();
    match find_kernelspec_in(name, &dirs) {
        Err(KernelError::NotFound { .. }) if name.eq_ignore_ascii_case(NATIVE_KERNEL) => {
            python3_on_path().ok_or_else(|| not_found(name, &dirs))
        }
        Err(KernelError::NotFound {
            name,
            mut available,
            searched,
        }) => {
            // Name the fallback too, so the list matches `find_kernelspecs`.
            if !available.iter().any(|n| n == NATIVE_KERNEL) && python3_on_path().is_some() {
                available.push(NATIVE_KERNEL.to_owned());
                available.sort();
            }
            Err(KernelError::NotFound {
                name,
                available,
                searched,
            })
        }
        other => other,
    }
}

/// Like [`find_kernelspecs`] but over the given `kernels` directories only,
/// without the `python3` fallback.
pub fn find_kernelspecs_in(dirs: &[PathBuf]) -> Vec<KernelSpec> {
    let mut by_name: BTreeMap<String, KernelSpec> = BTreeMap::new();
    for dir in dirs {
        for (name, path) in kernel_dirs_in(dir) {
            if by_name.contains_key(&name) {
                continue;
            }
            if let Ok(spec) = load_kernelspec_named(&name, &path) {
                by_name.insert(name, spec);
            }
        }
    }
    by_name.into_values().collect()
}

/// Like [`find_kernelspec`] but over the given `kernels` directories only,
/// without the `python3` fallback.
pub fn find_kernelspec_in(name: &str, dirs: &[PathBuf]) -> Result<KernelSpec, KernelError> {
    let wanted = name.to_lowercase();
    for dir in dirs {
        if let Some((n, path)) = kernel_dirs_in(dir).into_iter().find(|(n, _)| *n == wanted) {
            return load_kernelspec_named(&n, &path);
        }
    }
    Err(not_found(name, dirs))
}

/// Reads the kernelspec in `dir` (which holds `kernel.json`); its name is the
/// directory's name, lower-cased.
pub fn load_kernelspec(dir: &Path) -> Result<KernelSpec, KernelError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    load_kernelspec_named(&name, dir)
}

const NATIVE_KERNEL: &str = "python3";

fn not_found(name: &str, dirs: &[PathBuf]) -> KernelError {
    let mut available: Vec<String> = find_kernelspecs_in(dirs)
        .into_iter()
        .map(|s| s.name)
        .collect();
    available.sort();
    KernelError::NotFound {
        name: name.to_owned(),
        available,
        searched: dirs.to_vec(),
    }
}

/// `(lower-cased name, path)` of each valid kernel directory in `dir`, sorted,
/// so results do not depend on the order `read_dir` happens to return.
fn kernel_dirs_in(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_lowercase();
            let path = e.path();
            (valid_kernel_name(&name) && path.join("kernel.json").is_file()).then_some((name, path))
        })
        .collect();
    out.sort();
    out
}

/// Jupyter's rule: ASCII letters, digits, `.`, `_` and `-`.
fn valid_kernel_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn load_kernelspec_named(name: &str, dir: &Path) -> Result<KernelSpec, KernelError> {
    let path = dir.join("kernel.json");
    let invalid = |reason: String| KernelError::InvalidSpec {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| invalid(e.to_string()))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let obj = json
        .as_object()
        .ok_or_else(|| invalid("not a JSON object".into()))?;

    let argv: Vec<String> = match obj.get("argv") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid("argv must be a list of strings".into()))?,
        _ => return Err(invalid("argv must be a list of strings".into())),
    };
    if argv.is_empty() {
        return Err(invalid("argv is empty".into()));
    }
    let text_field = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut env = BTreeMap::new();
    match obj.get("env") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = v
                    .as_str()
                    .ok_or_else(|| invalid(format!("env value of {k} must be a string")))?;
                env.insert(k.clone(), v.to_owned());
            }
        }
        Some(_) => return Err(invalid("env must be an object".into())),
    }
    let interrupt_mode = match text_field("interrupt_mode").map(|m| m.to_lowercase()) {
        None => InterruptMode::Signal,
        Some(m) if m == "signal" => InterruptMode::Signal,
        Some(m) if m == "message" => InterruptMode::Message,
        Some(m) => {
            return Err(invalid(format!(
                "interrupt_mode must be \"signal\" or \"message\", not {m:?}"
            )));
        }
    };
    Ok(KernelSpec {
        name: name.to_owned(),
        display_name: text_field("display_name").unwrap_or_else(|| name.to_owned()),
        language: text_field("language").unwrap_or_default(),
        argv,
        env,
        interrupt_mode,
        resource_dir: dir.to_path_buf(),
        metadata: obj
            .get("metadata")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
    })
}

/// A `python3` spec for the first `python3` on `PATH` that has ipykernel,
/// like Jupyter's "native kernel". Runs Python once, so callers use it only
/// when no directory provided a `python3` spec.
fn python3_on_path() -> Option<KernelSpec> {
    let python = which("python3")?;
    let out = std::process::Command::new(&python)
        .args(["-c", "import ipykernel.kernelspec as k; print(k.RESOURCES)"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let resources = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut metadata = Map::new();
    metadata.insert("debugger".into(), Value::Bool(true));
    Some(KernelSpec {
        name: NATIVE_KERNEL.into(),
        display_name: "Python 3 (ipykernel)".into(),
        language: "python".into(),
        argv: vec![
            python.display().to_string(),
            "-m".into(),
            "ipykernel_launcher".into(),
            "-f".into(),
            "{connection_file}".into(),
        ],
        env: BTreeMap::new(),
        interrupt_mode: InterruptMode::Signal,
        resource_dir: PathBuf::from(resources),
        metadata: Value::Object(metadata),
    })
}

/// The first executable called `program` in `PATH`.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| {
            owned
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn search_order_is_jupyter_path_then_user_then_envs_then_system() {
        let dirs = search_dirs_from(vars(&[
            ("JUPYTER_PATH", "/a:/b::"),
            ("HOME", "/home/u"),
            ("VIRTUAL_ENV", "/venv"),
            ("CONDA_PREFIX", "/conda"),
        ]));
        let expect: Vec<PathBuf> = [
            "/a/kernels",
            "/b/kernels",
            "/home/u/.local/share/jupyter/kernels",
            "/venv/share/jupyter/kernels",
            "/conda/share/jupyter/kernels",
            "/usr/local/share/jupyter/kernels",
            "/usr/share/jupyter/kernels",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(dirs, expect);
    }

    #[test]
    fn jupyter_data_dir_replaces_the_home_data_dir() {
        let dirs = search_dirs_from(vars(&[
            ("JUPYTER_DATA_DIR", "/data"),
            ("XDG_DATA_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ]));
        assert_eq!(dirs[0], PathBuf::from("/data/kernels"));
        assert!(
            !dirs
                .iter()
                .any(|d| d.starts_with("/home/u") || d.starts_with("/xdg"))
        );
        let dirs = search_dirs_from(vars(&[("XDG_DATA_HOME", "/xdg"), ("HOME", "/h")]));
        assert_eq!(dirs[0], PathBuf::from("/xdg/jupyter/kernels"));
    }

    #[test]
    fn duplicate_directories_are_searched_once() {
        let dirs = search_dirs_from(vars(&[("JUPYTER_PATH", "/usr/share/jupyter")]));
        assert_eq!(
            dirs.iter()
                .filter(|d| **d == Path::new("/usr/share/jupyter/kernels"))
                .count(),
            1
        );
        assert_eq!(dirs[0], PathBuf::from("/usr/share/jupyter/kernels"));
    }

    #[test]
    fn prefix_is_found_only_for_share_jupyter_kernels_layout() {
        let mut spec = KernelSpec {
            name: "x".into(),
            display_name: "x".into(),
            language: String::new(),
            argv: vec!["x".into()],
            env: BTreeMap::new(),
            interrupt_mode: InterruptMode::Signal,
            resource_dir: PathBuf::from("/opt/env/share/jupyter/kernels/x"),
            metadata: Value::Null,
        };
        assert_eq!(spec.prefix(), Some(PathBuf::from("/opt/env")));
        spec.resource_dir = PathBuf::from("/home/u/kernels/x");
        assert_eq!(spec.prefix(), None);
    }
}

#[cfg(test)]
mod discovery_tests {
    use super::*;

    fn write_spec(root: &Path, dir_name: &str, json: &str) -> PathBuf {
        let dir = root.join(dir_name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("kernel.json"), json).expect("write");
        dir
    }

    #[test]
    fn the_first_directory_wins_for_a_name_and_names_are_lower_cased() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        write_spec(
            a.path(),
            "Py",
            r#"{"argv": ["a"], "display_name": "A", "language": "python"}"#,
        );
        write_spec(b.path(), "py", r#"{"argv": ["b"], "display_name": "B"}"#);
        write_spec(
            b.path(),
            "ir",
            r#"{"argv": ["R"], "display_name": "R", "interrupt_mode": "message", "env": {"X": "1"}}"#,
        );
        write_spec(b.path(), "not valid!", r#"{"argv": ["x"]}"#);
        std::fs::create_dir_all(b.path().join("empty")).expect("mkdir");
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];

        let all = find_kernelspecs_in(&dirs);
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ir", "py"]);
        assert_eq!(all[1].argv, ["a"]);
        assert_eq!(all[1].resource_dir, a.path().join("Py"));
        assert_eq!(all[0].interrupt_mode, InterruptMode::Message);
        assert_eq!(all[0].env.get("X").map(String::as_str), Some("1"));
        assert_eq!(all[0].metadata, serde_json::json!({}));

        let py = find_kernelspec_in("PY", &dirs).expect("case-insensitive lookup");
        assert_eq!(py.display_name, "A");
        assert_eq!(py.language, "python");
    }

    #[test]
    fn an_unknown_kernel_lists_what_exists_and_where_it_looked() {
        let a = tempfile::tempdir().expect("tempdir");
        write_spec(a.path(), "python3", r#"{"argv": ["python"]}"#);
        let dirs = vec![
            a.path().to_path_buf(),
            PathBuf::from("/nonexistent/kernels"),
        ];
        match find_kernelspec_in("julia-1.9", &dirs) {
            Err(KernelError::NotFound {
                name,
                available,
                searched,
            }) => {
                assert_eq!(name, "julia-1.9");
                assert_eq!(available, ["python3"]);
                assert_eq!(searched, dirs);
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    #[test]
    fn a_broken_kernel_json_is_an_invalid_spec_error_naming_the_file() {
        let a = tempfile::tempdir().expect("tempdir");
        let dir = write_spec(a.path(), "bad", r#"{"argv": "python -m x"}"#);
        let err =
            find_kernelspec_in("bad", &[a.path().to_path_buf()]).expect_err("argv must be a list");
        assert!(matches!(err, KernelError::InvalidSpec { .. }));
        assert!(
            err.to_string()
                .contains(&dir.join("kernel.json").display().to_string())
        );
        write_spec(
            a.path(),
            "bad2",
            r#"{"argv": ["x"], "interrupt_mode": "poke"}"#,
        );
        assert!(find_kernelspec_in("bad2", &[a.path().to_path_buf()]).is_err());
    }

    #[test]
    fn the_json_listing_has_jupyters_shape() {
        let a = tempfile::tempdir().expect("tempdir");
        write_spec(
            a.path(),
            "k",
            r#"{"argv": ["k", "{connection_file}"], "display_name": "K"}"#,
        );
        let specs = find_kernelspecs_in(&[a.path().to_path_buf()]);
        let json = kernelspecs_json(&specs);
        let k = &json["kernelspecs"]["k"];
        assert_eq!(k["resource_dir"], a.path().join("k").display().to_string());
        assert_eq!(
            k["spec"]["argv"],
            serde_json::json!(["k", "{connection_file}"])
        );
        assert_eq!(k["spec"]["interrupt_mode"], "signal");
        assert_eq!(k["spec"]["display_name"], "K");
    }
}
