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
}

impl Console {
    pub fn new(show_bar: bool, log_output: bool) -> Console {
        Console {
            bar: None,
            show_bar,
            log_output,
        }
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
            RunEvent::Stream { name, text, .. } if self.log_output => {
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
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
