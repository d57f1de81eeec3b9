//! nbexec as a library: run Jupyter notebooks headlessly on a real kernel, with
//! parameters injected, from a Rust program.
//!
//! This is a facade. The engines live in their own crates (`nbexec-format`,
//! `nbexec-params`, `nbexec-kernel`, `nbexec-runner`), and a run as a job (the
//! builder, batches, the registry, cancellation) in `nbexec-orchestrate`, which the
//! `nbexec` command and `nbexec serve` both call. Everything here is re-exported
//! from there, so embedders depend on one crate.
//!
//! ```
//! use std::time::Duration;
//! use serde_json::json;
//!
//! let result = nbexec::Run::new("fixtures/example.ipynb")
//!     .parameter("city", json!("Redlands"))
//!     .parameter("min_area", json!(2.5))
//!     .execution_timeout(Some(Duration::from_secs(120)))
//!     .run_blocking()?;
//! assert!(result.outcome.is_success());
//! // The executed notebook: the injected cell follows the `parameters` cell.
//! let injected = &result.notebook.cells()[2];
//! assert!(injected.has_tag("injected-parameters"));
//! assert!(injected.source().contains("city = \"Redlands\""));
//! # Ok::<(), nbexec::Error>(())
//! ```

pub use nbexec_orchestrate::*;
