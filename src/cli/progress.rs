//! What a person sees while a notebook runs: a progress bar on a terminal, and with
//! `--log-output` the cells' own stdout and stderr, exactly as they printed it. Both
//! are consumers of the library's run events.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use nbexec::RunEvent;

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

pub struct Console {
    bar: Option<ProgressBar>,
    show_bar: bool,
    log_output: bool,
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
        show_bar: bool,
        log_output: bool,
        stdout_file: Option<&std::path::Path>,
        stderr_file: Option<&std::path::Path>,
    ) -> Result<Console, String> {
        Ok(Console {
            bar: None,
            show_bar,
            log_output,
            stdout_file: create(stdout_file)?,
            stderr_file: create(stderr_file)?,
        })
    }

    pub fn event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::KernelReady { cells, .. } if self.show_bar => {
                let bar = ProgressBar::new(*cells as u64);
                if let Ok(style) = ProgressStyle::with_template(
                    "Executing {bar:40} {pos}/{len} cells [{elapsed_precise}<{eta_precise}]",
                ) {
                    bar.set_style(style);
                }
                self.bar = Some(bar);
            }
            RunEvent::CellFinished { .. } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            RunEvent::Stream { name, text, .. } => {
                let file = if *name == "stderr" {
                    self.stderr_file.as_mut()
                } else {
                    self.stdout_file.as_mut()
                };
                if let Some(file) = file {
                    let _ = file.write_all(text.as_bytes());
                }
                if !self.log_output {
                    return;
                }
                // Exactly what the cell wrote: no prefixes, no added newlines.
                if *name == "stderr" {
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
                } else {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
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
