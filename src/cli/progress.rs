//! What a person sees while a notebook runs: progress (a bar on a terminal, one line
//! per cell on a pipe or a CI log), with `--log-output` the cells' own stdout and
//! stderr exactly as they printed it, and at the end one summary line. All of it is
//! built on the library's run events.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use nbexec::{CellStatus, RunEvent};

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    None,
    /// A bar redrawn in place: stderr is a terminal.
    Bar,
    /// `[3/40] cell 5 done in 0.8 s`, one line per cell: stderr is a pipe or a file.
    Lines,
}

impl Progress {
    /// `--progress-bar` asks for progress anywhere; without it, only a terminal gets a
    /// bar. `--no-progress-bar` wins.
    pub fn choose(asked: bool, refused: bool) -> Progress {
        let terminal = stderr_is_terminal();
        match (refused, asked, terminal) {
            (true, _, _) => Progress::None,
            (false, _, true) => Progress::Bar,
            (false, true, false) => Progress::Lines,
            (false, false, false) => Progress::None,
        }
    }
}

pub struct Console {
    progress: Progress,
    bar: Option<ProgressBar>,
    log_output: bool,
    /// The executed notebook goes to stdout: the cells' stdout goes to stderr, so the
    /// JSON stays whole.
    stdout_is_notebook: bool,
    /// Cell index → (its number among the cells run, how many run, when it started).
    started: HashMap<usize, (usize, usize, Instant)>,
    /// papermill's --stdout-file / --stderr-file.
    stdout_file: Option<std::io::BufWriter<std::fs::File>>,
    stderr_file: Option<std::io::BufWriter<std::fs::File>>,
}

fn create(
    path: Option<&std::path::Path>,
) -> Result<Option<std::io::BufWriter<std::fs::File>>, String> {
    path.map(|p| {
        std::fs::File::create(p)
            .map(std::io::BufWriter::new)
            .map_err(|e| format!("cannot create {}: {e}", p.display()))
    })
    .transpose()
}

impl Console {
    pub fn new(
        progress: Progress,
        log_output: bool,
        stdout_is_notebook: bool,
        stdout_file: Option<&std::path::Path>,
        stderr_file: Option<&std::path::Path>,
    ) -> Result<Console, String> {
        Ok(Console {
            progress,
            bar: None,
            log_output,
            stdout_is_notebook,
            started: HashMap::new(),
            stdout_file: create(stdout_file)?,
            stderr_file: create(stderr_file)?,
        })
    }

    /// Writes `text` to stderr (or stdout) with the bar, if any, out of the way.
    fn write(&self, to_stderr: bool, text: &[u8]) {
        let write = || {
            if to_stderr {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(text).and_then(|()| err.flush());
            } else {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text).and_then(|()| out.flush());
            }
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    pub fn event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::KernelReady { cells, .. } if self.progress == Progress::Bar => {
                let bar = ProgressBar::new(*cells as u64);
                if let Ok(style) = ProgressStyle::with_template(
                    "Executing {bar:40} {pos}/{len} cells [{elapsed_precise}<{eta_precise}]",
                ) {
                    bar.set_style(style);
                }
                self.bar = Some(bar);
            }
            RunEvent::CellStarted {
                index,
                number,
                total,
            } => {
                self.started
                    .insert(*index, (*number, *total, Instant::now()));
            }
            RunEvent::CellFinished { index, status } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
                if self.progress == Progress::Lines {
                    // A cell that never got to start (the kernel died first) has no
                    // number: it is not counted.
                    if let Some((number, total, at)) = self.started.remove(index) {
                        let word = match status {
                            CellStatus::Failed => "failed",
                            _ => "done",
                        };
                        let line = format!(
                            "[{number}/{total}] cell {index} {word} in {:.1} s\n",
                            at.elapsed().as_secs_f64()
                        );
                        self.write(true, line.as_bytes());
                    }
                }
            }
            RunEvent::Stream { name, text, .. } => {
                let to_stderr = *name == "stderr";
                let file = if to_stderr {
                    self.stderr_file.as_mut()
                } else {
                    self.stdout_file.as_mut()
                };
                if let Some(file) = file {
                    let _ = file.write_all(text.as_bytes());
                }
                if self.log_output {
                    // Exactly what the cell wrote: no prefixes, no added newlines.
                    self.write(to_stderr || self.stdout_is_notebook, text.as_bytes());
                }
            }
            _ => {}
        }
    }

    pub fn finish(&mut self) {
        for file in [self.stdout_file.as_mut(), self.stderr_file.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = file.flush();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// `text` without ANSI escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL/ST`,
/// and two-byte escapes): IPython colours its tracebacks.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // Parameters and intermediates, up to a final byte in '@'..='~'.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strip_ansi;

    #[test]
    fn strips_colours_and_titles_and_keeps_the_text() {
        assert_eq!(
            strip_ansi("\u{1b}[0;31mValueError\u{1b}[0m: boom\u{1b}[1;38;5;4m!"),
            "ValueError: boom!"
        );
        assert_eq!(strip_ansi("a\u{1b}]0;title\u{7}b"), "ab");
        assert_eq!(strip_ansi("no escapes, ünïcode"), "no escapes, ünïcode");
        assert_eq!(strip_ansi("cut \u{1b}["), "cut ");
    }
}
