//! Notebook read+write: nbexec against bare `serde_json::Value` and Python nbformat,
//! on a ~50 MB text-heavy and a ~50 MB image-heavy notebook generated here (seeded,
//! so every run sees the same bytes). Run: `cargo bench --bench format_io`.
//!
//! Flags (after `--`): `--quick` for fewer runs; `--generate DIR` to write the two
//! notebooks and stop; `--child-read-write FILE` is the peak-memory child.
//!
//! Each figure is the median of several in-process runs; Python reports its own
//! in-process time (no interpreter start-up). Peak memory is the high-water mark
//! (VmHWM) of a child process of this binary that reads the file, parses it, drops
//! the input bytes and writes the notebook back, as a caller would.
//!
//! Targets (see the performance spec): nbexec within 1.5× of bare `serde_json::Value`,
//! ≥ 5× faster than Python on the text-heavy file and ≥ 3× on the image-heavy one,
//! peak memory ≤ 3× the file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nbexec_format::{Cell, Notebook};
use serde_json::{Value, json};

const RUNS: usize = 7;
const PYTHON_RUNS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-read-write") {
        child_read_write(Path::new(&args[i + 1]));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--generate") {
        // For profiling: write the notebooks, then e.g.
        // `perf record format_io --child-read-write DIR/text.ipynb`.
        let dir = Path::new(&args[i + 1]);
        write(dir, "text.ipynb", &text_heavy());
        write(dir, "image.ipynb", &image_heavy());
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let dir = tempfile::tempdir().expect("temp dir");
    let files = [
        ("text-heavy", write(dir.path(), "text.ipynb", &text_heavy())),
        (
            "image-heavy",
            write(dir.path(), "image.ipynb", &image_heavy()),
        ),
    ];
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");

    println!(
        "{:<12} {:>8} {:>12} {:>12} {:>12} {:>9} {:>10} {:>16}",
        "file", "MB", "nbexec ms", "serde ms", "Python ms", "/serde", "Python/", "peak MB (×file)"
    );
    let mut misses = Vec::new();
    for (name, path) in &files {
        let bytes = std::fs::read(path).expect("read notebook");
        let size = bytes.len() as f64 / 1e6;
        // The generated files are canonical: nbexec must give back the same bytes.
        let nb = nbexec_format::read_slice(&bytes).expect("read").notebook;
        assert!(
            nbexec_format::write_to_vec(&nb) == bytes,
            "{name}: not a fixed point"
        );
        drop(nb);

        let runs = if quick { 2 } else { RUNS };
        let (mut ours, mut serde) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            ours.push(time(|| {
                let nb = nbexec_format::read_slice(&bytes).expect("read").notebook;
                nbexec_format::write_to_vec(&nb).len()
            }));
            serde.push(time(|| {
                let v: Value = serde_json::from_slice(&bytes).expect("parse");
                serde_json::to_vec_pretty(&v).expect("serialise").len()
            }));
        }
        let (ours, serde) = (median(ours), median(serde));
        let python_ms = python_times(&python, path, if quick { 1 } else { PYTHON_RUNS });
        let peak = peak_memory(path);

        let vs_serde = ours / serde;
        let python_ratio = python_ms.map(|p| p / ours);
        println!(
            "{:<12} {:>8.1} {:>12.1} {:>12.1} {:>12} {:>8.2}× {:>10} {:>9.0} ({:.2}×)",
            name,
            size,
            ours,
            serde,
            python_ms.map_or("n/a".into(), |p| format!("{p:.1}")),
            vs_serde,
            python_ratio.map_or("n/a".into(), |r| format!("{r:.1}×")),
            peak,
            peak / size,
        );
        if vs_serde > 1.5 {
            misses.push(format!("{name}: {vs_serde:.2}× serde_json (target ≤ 1.5×)"));
        }
        let want = if *name == "text-heavy" { 5.0 } else { 3.0 };
        if let Some(r) = python_ratio.filter(|r| *r < want) {
            misses.push(format!(
                "{name}: {r:.1}× faster than Python (target ≥ {want}×)"
            ));
        }
        if peak / size > 3.0 {
            misses.push(format!(
                "{name}: peak {:.2}× the file (target ≤ 3×)",
                peak / size
            ));
        }
    }
    println!("(nbexec = read_slice + write_to_vec; serde = from_slice::<Value> + to_vec_pretty;");
    println!(
        " medians of {RUNS} (Python {PYTHON_RUNS}); serde_json with the workspace's features)"
    );
    if misses.is_empty() {
        println!("all targets met");
    } else {
        for m in misses {
            println!("MISSED: {m}");
        }
    }
}

/// Child mode: the whole life of a notebook in a caller, then the high-water mark.
fn child_read_write(path: &Path) {
    let bytes = std::fs::read(path).expect("read notebook");
    let nb = nbexec_format::read_slice(&bytes).expect("parse").notebook;
    drop(bytes);
    let out = nbexec_format::write_to_vec(&nb);
    drop(nb);
    std::fs::write(path.with_extension("out"), &out).expect("write notebook");
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .expect("VmHWM");
    println!("{}", hwm.trim().trim_end_matches(" kB"));
}

fn peak_memory(path: &Path) -> f64 {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .arg("--child-read-write")
        .arg(path)
        .output()
        .expect("run child");
    assert!(out.status.success(), "child failed");
    let kb: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("VmHWM in kB");
    kb * 1024.0 / 1e6
}

fn python_times(python: &Path, path: &Path, runs: usize) -> Option<f64> {
    const SCRIPT: &str = r#"
import json, sys, time, warnings, nbformat
warnings.simplefilter("ignore")
with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
times = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    nb = nbformat.reads(text, as_version=4)
    out = nbformat.writes(nb)
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"#;
    if !python.exists() {
        eprintln!(
            "{} missing (run scripts/venv.sh): no Python figures",
            python.display()
        );
        return None;
    }
    let out = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(path)
        .arg(runs.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("Python failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let times: Vec<f64> = serde_json::from_slice(&out.stdout).ok()?;
    Some(median(times.into_iter().map(|s| s * 1e3).collect()))
}

fn time(f: impl FnOnce() -> usize) -> f64 {
    let start = Instant::now();
    std::hint::black_box(f());
    let elapsed: Duration = start.elapsed();
    elapsed.as_secs_f64() * 1e3
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn write(dir: &Path, name: &str, nb: &Notebook) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, nbexec_format::write_to_vec(nb)).expect("write notebook");
    path
}

/// xorshift64*: deterministic, and enough for making text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn line(&mut self, words: u64) -> String {
        const WORDS: &[&str] = &[
            "df",
            "=",
            "pd.read_csv(path)",
            "for",
            "x",
            "in",
            "range(10):",
            "print(x)",
            "result",
            "→",
            "value",
            "0.125",
            "'quoted'",
            "\"dq\"",
            "tab\t",
            "naïve",
            "数据",
            "self.model.fit(X_train,",
            "y_train)",
            "# comment",
            "return",
            "np.mean(a)",
        ];
        let n = 1 + self.below(words);
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(WORDS[self.below(WORDS.len() as u64) as usize]);
        }
        s.push('\n');
        s
    }

    fn lines(&mut self, count: u64, words: u64) -> String {
        (0..count).map(|_| self.line(words)).collect()
    }
}

fn notebook_with(cells: Vec<Cell>) -> Notebook {
    let mut nb = Notebook::new();
    nb.metadata_mut().insert(
        "kernelspec".into(),
        json!({"display_name": "Python 3", "language": "python", "name": "python3"}),
    );
    nb.metadata_mut().insert(
        "language_info".into(),
        json!({"name": "python", "version": "3.11.4", "codemirror_mode": {"name": "ipython", "version": 3}}),
    );
    *nb.cells_mut() = cells;
    for (i, cell) in nb.cells_mut().iter_mut().enumerate() {
        cell.set_id(Some(format!("{i:08x}")));
    }
    nb
}

/// 3,000 cells: code with many lines of source and of stream output, and markdown.
fn text_heavy() -> Notebook {
    let mut rng = Rng(0x5eed_0001);
    let cells = (0..3000)
        .map(|i| {
            if i % 4 == 3 {
                return Cell::new_markdown(&rng.lines(20, 12));
            }
            let mut cell = Cell::new_code(&rng.lines(45, 8));
            cell.set_execution_count(Some(i));
            cell.metadata_mut().insert(
                "execution".into(),
                json!({"iopub.status.busy": "2024-01-01T00:00:00.000001Z", "shell.execute_reply": "2024-01-01T00:00:00.5Z"}),
            );
            cell.outputs_mut().push(json!({
                "output_type": "stream", "name": "stdout", "text": rng.lines(470, 6),
            }));
            cell.outputs_mut().push(json!({
                "output_type": "execute_result", "execution_count": i, "metadata": {},
                "data": {"text/plain": rng.lines(5, 6), "text/html": rng.lines(10, 10)},
            }));
            cell
        })
        .collect();
    notebook_with(cells)
}

/// 200 cells, each showing a ~250 KB base64 PNG-like image.
fn image_heavy() -> Notebook {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = Rng(0x5eed_0002);
    let cells = (0..200)
        .map(|i| {
            let mut cell = Cell::new_code(&rng.lines(6, 8));
            cell.set_execution_count(Some(i));
            let mut png = String::from("iVBORw0KGgoAAAANSUhEUgAA");
            png.extend((0..250_000).map(|_| B64[rng.below(64) as usize] as char));
            png.push('\n');
            cell.outputs_mut().push(json!({
                "output_type": "display_data",
                "metadata": {"image/png": {"width": 640, "height": 480}},
                "data": {"image/png": png, "text/plain": "<Figure size 640x480 with 1 Axes>"},
            }));
            cell
        })
        .collect();
    notebook_with(cells)
}
