//! HTML reports: `nbexec render` against `jupyter nbconvert --to html`, measured in the
//! same run, on a ~50 MB image-heavy notebook and a 1,000-cell notebook generated here
//! (seeded, the same bytes every run). Run: `cargo bench --bench report` (needs
//! nbconvert in the project's .venv: scripts/venv.sh).
//!
//! Wall time is the median of several runs of each command as a user runs it (process
//! start included); peak memory is the child's maximum resident set (wait4's rusage).
//! Targets (issue 15): nbexec at least 10× faster than nbconvert on both notebooks,
//! and its peak memory at most 2× the 50 MB notebook.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use nbexec_format::{Cell, Notebook};
use serde_json::json;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (ours_runs, theirs_runs) = if quick { (1, 1) } else { (5, 3) };
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--generate") {
        let dir = Path::new(&args[i + 1]);
        write(dir, "images.ipynb", &image_heavy());
        write(dir, "cells.ipynb", &thousand_cells());
        return;
    }
    // The notebooks are made by a child: a forked child's peak memory counts the
    // parent's pages, so this process stays small.
    let dir = tempfile::tempdir().expect("temp dir");
    let made = Command::new(std::env::current_exe().expect("own path"))
        .arg("--generate")
        .arg(dir.path())
        .status()
        .expect("generate the notebooks");
    assert!(made.success(), "generating the notebooks failed");
    let files = [
        ("image-heavy 50 MB", dir.path().join("images.ipynb")),
        ("1,000 cells", dir.path().join("cells.ipynb")),
    ];
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv");
    let nbexec = env!("CARGO_BIN_EXE_nbexec");
    println!(
        "{:<18} {:>7} {:>11} {:>14} {:>9} {:>13} {:>16} {:>9}",
        "notebook",
        "MB",
        "nbexec s",
        "nbconvert s",
        "speed-up",
        "nbexec MB",
        "nbconvert MB",
        "mem/file"
    );
    let mut misses = Vec::new();
    for (name, path) in &files {
        let size = std::fs::metadata(path).unwrap().len() as f64 / 1e6;
        let out = dir.path().join("out.html");
        let ours: Vec<(f64, f64)> = (0..ours_runs)
            .map(|_| {
                measure(
                    Command::new(nbexec)
                        .arg("render")
                        .arg(path)
                        .arg("-o")
                        .arg(&out),
                )
            })
            .collect();
        let html_mb = std::fs::metadata(&out).unwrap().len() as f64 / 1e6;
        let theirs: Vec<(f64, f64)> = (0..theirs_runs)
            .map(|_| {
                measure(
                    Command::new(venv.join("bin/python"))
                        .args([
                            "-m",
                            "nbconvert",
                            "--to",
                            "html",
                            "--log-level=ERROR",
                            "--output-dir",
                        ])
                        .arg(dir.path().join("nbconvert"))
                        .arg(path),
                )
            })
            .collect();
        let (t_ours, m_ours) = medians(&ours);
        let (t_theirs, m_theirs) = medians(&theirs);
        let speedup = t_theirs / t_ours;
        println!(
            "{name:<18} {size:>7.1} {t_ours:>11.3} {t_theirs:>14.3} {:>8.1}x {m_ours:>13.1} {m_theirs:>16.1} {:>8.2}x",
            speedup,
            m_ours / size
        );
        eprintln!("  ({name}: report {html_mb:.1} MB)");
        if speedup < 10.0 {
            misses.push(format!(
                "{name}: {speedup:.1}x faster than nbconvert (target 10x)"
            ));
        }
        if name.starts_with("image") && m_ours > 2.0 * size {
            misses.push(format!("{name}: peak {m_ours:.1} MB > 2x the notebook"));
        }
    }
    if misses.is_empty() {
        println!("targets: all met");
    } else {
        misses.iter().for_each(|m| println!("target missed: {m}"));
    }
}

/// (wall seconds, peak resident MB) of one run of `cmd`, which must succeed.
fn measure(cmd: &mut Command) -> (f64, f64) {
    let start = Instant::now();
    let child = cmd.spawn().expect("start command");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let took = start.elapsed().as_secs_f64();
    assert_eq!(waited, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    std::mem::forget(child);
    (took, usage.ru_maxrss as f64 * 1024.0 / 1e6)
}

fn medians(runs: &[(f64, f64)]) -> (f64, f64) {
    let mut t: Vec<f64> = runs.iter().map(|r| r.0).collect();
    let mut m: Vec<f64> = runs.iter().map(|r| r.1).collect();
    t.sort_by(f64::total_cmp);
    m.sort_by(f64::total_cmp);
    (t[t.len() / 2], m[m.len() / 2])
}

fn write(dir: &Path, name: &str, nb: &Notebook) {
    std::fs::write(dir.join(name), nbexec_format::write_to_vec(nb)).expect("write notebook");
}

/// xorshift64*: deterministic filler.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn base64(&mut self, len: usize) -> String {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::with_capacity(len + len / 76 + 8);
        s.push_str("iVBORw0KGgo");
        while s.len() < len {
            s.push(B64[(self.next() % 64) as usize] as char);
        }
        s.push('\n');
        s
    }
}

fn notebook_with(cells: Vec<Cell>) -> Notebook {
    let mut nb = Notebook::new();
    nb.metadata_mut().insert(
        "kernelspec".into(),
        json!({"name": "python3", "display_name": "Python 3", "language": "python"}),
    );
    *nb.cells_mut() = cells;
    nb.add_missing_ids();
    nb
}

/// 200 plotting cells with a ~250 KB PNG each (about 50 MB).
fn image_heavy() -> Notebook {
    let mut rng = Rng(0x5eed_0015);
    let cells = (0..200)
        .map(|i| {
            let mut cell = Cell::new_code(&format!("fig, ax = plt.subplots()\nax.plot(series_{i})\nplt.show()"));
            cell.set_execution_count(Some(i + 1));
            cell.outputs_mut().push(json!({
                "output_type": "display_data",
                "metadata": {"image/png": {"width": 640, "height": 480}},
                "data": {"image/png": rng.base64(250_000), "text/plain": "<Figure size 640x480 with 1 Axes>"},
            }));
            cell
        })
        .collect();
    notebook_with(cells)
}

/// 1,000 cells: code with coloured streams and DataFrame-like tables, every fourth
/// a Markdown cell.
fn thousand_cells() -> Notebook {
    let cells = (0..1000)
        .map(|i| {
            if i % 4 == 3 {
                return Cell::new_markdown(&format!(
                    "## Step {i}\n\nSome *text* with `code`, a [link](https://example.org/{i}) and a table:\n\n| a | b |\n|---|---|\n| {i} | {} |\n",
                    i * 2
                ));
            }
            let mut cell = Cell::new_code(&format!("df_{i} = load({i})\nprint(df_{i}.shape)\ndf_{i}.head()"));
            cell.set_execution_count(Some(i + 1));
            cell.outputs_mut().push(json!({
                "output_type": "stream", "name": "stdout",
                "text": format!("\u{1b}[32mloaded\u{1b}[0m {i} rows\n(5, 3)\n"),
            }));
            let rows: String = (0..5)
                .map(|r| format!("<tr><th>{r}</th><td>{}</td><td>{}</td><td>x{r}</td></tr>", i * r, r as f64 / 3.0))
                .collect();
            cell.outputs_mut().push(json!({
                "output_type": "execute_result", "execution_count": i + 1, "metadata": {},
                "data": {
                    "text/plain": "   a  b  c\n0  1  2  x",
                    "text/html": format!("<div><table border=\"1\" class=\"dataframe\"><thead><tr style=\"text-align: right;\"><th></th><th>a</th><th>b</th><th>c</th></tr></thead><tbody>{rows}</tbody></table></div>"),
                },
            }));
            cell
        })
        .collect();
    notebook_with(cells)
}
