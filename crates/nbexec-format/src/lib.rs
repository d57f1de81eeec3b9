//! The notebook model of nbexec: reads Jupyter notebooks (nbformat 4.0–4.5 and later
//! 4.x minors), gives typed access to what the engine needs (cells, their type, id,
//! source, tags, metadata, outputs, execution count, the kernelspec and language),
//! and writes them back byte-for-byte as Python `nbformat.write` would.
//!
//! [`validate`] checks a notebook against the official nbformat v4 JSON schema of its
//! minor version, as Python's `nbformat.validate` does.
//!
//! It must stay lossless: every key, output type and MIME bundle it read is written
//! back, whether or not it understands it. It does no I/O policy (callers decide
//! where and how files are written) and knows nothing about kernels.

#![warn(missing_docs)]

mod error;
mod model;
mod pyjson;
mod read;
mod stream;
mod upgrade;
mod validate;
mod write;

pub use error::{FormatError, Warning};
pub use model::{Cell, Notebook};
pub use pyjson::{python_float_repr, splitlines_keepends};
pub use read::{
    NEWEST_MINOR, ReadOutcome, from_value, read_slice, read_str, read_str_with_warnings,
};
pub use validate::{ValidationIssue, validate};
pub use write::{write_string, write_to_vec};
