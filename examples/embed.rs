//! Embedding nbexec in a Rust program: run a notebook with parameters, watch its
//! cells as they run, and act on the result.
//!
//! ```sh
//! VIRTUAL_ENV=$PWD/.venv cargo run --example embed -- fixtures/example.ipynb
//! ```

use std::time::Duration;

use nbexec::{Output, Run, RunEvent};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let input = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fixtures/example.ipynb".into());
    let feature_set: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("fixtures/example-params.json")?)?;

    let run = Run::new(&input)
        .output(Output::parse("target/embed-output.ipynb"))
        .parameter("city", json!("Redlands"))
        .parameter("min_area", json!(2.5))
        .parameter("parcels", feature_set["parcels"].clone())
        .execution_timeout(Some(Duration::from_secs(120)));

    // Events arrive as the kernel reports them; a progress bar or a log is built the same way.
    let mut on_event = |event: &RunEvent| match event {
        RunEvent::KernelReady { kernel, cells } => {
            println!("kernel {kernel} ready, {cells} cells to run")
        }
        RunEvent::CellStarted {
            index,
            number,
            total,
        } => println!("cell {index} started ({number}/{total})"),
        RunEvent::Stream { text, .. } => print!(
            "  | {}",
            text.replace('\n', "\n  | ").trim_end_matches("  | ")
        ),
        RunEvent::CellFinished { index, status } => println!("cell {index} {}", status.as_str()),
        _ => {}
    };
    let result = run.run_blocking_with(&mut on_event, |warning| eprintln!("warning: {warning}"))?;

    println!("{}", result.outcome.summary());
    if let nbexec::Outcome::CellFailed(error) = &result.outcome {
        eprintln!("{}: {}", error.ename, error.evalue);
        for line in &error.traceback {
            eprintln!("{line}");
        }
    }
    println!(
        "{} cells in the executed notebook",
        result.notebook.cells().len()
    );
    std::process::exit(result.outcome.exit_code());
}
