//! Julia, as papermill 2.7's `JuliaTranslator`, with three fixes (see
//! [`JuliaTranslator`]).

use super::r::{Syntax, write_literal};
use super::{Translator, hash_comment};
use crate::error::ParamError;
use crate::value::Value;

/// Julia literals: `nothing`, `true`/`false`, `[a, b]`, `Dict("k" => v)`.
///
/// Differences from papermill: `$` in strings is written `\$` (papermill leaves it,
/// so `"$(run(...))"` would run code when the cell is evaluated); non-finite floats
/// are `NaN`, `Inf`, `-Inf` (papermill's `nan`, `inf` are undefined names); characters
/// U+0080–U+00FF are `\u00NN` (papermill's `\xNN` is a raw, invalid UTF-8 byte in
/// Julia). A date is its ISO-8601 string.
#[derive(Debug, Clone, Copy, Default)]
pub struct JuliaTranslator;

/// How Julia spells each kind of value.
const JULIA: Syntax = Syntax {
    language: "julia",
    null: "nothing",
    true_: "true",
    false_: "false",
    list: ("[", "]"),
    dict: ("Dict(", " => ", ")"),
    escape_dollar: true,
};

impl JuliaTranslator {
    fn write(&self, name: &str, value: &Value, out: &mut String) -> Result<(), ParamError> {
        write_literal(&JULIA, name, value, out)
    }
}

impl Translator for JuliaTranslator {
    fn language(&self) -> &'static str {
        "julia"
    }

    fn literal(&self, name: &str, value: &Value) -> Result<String, ParamError> {
        let mut out = String::new();
        self.write(name, value, &mut out)?;
        Ok(out)
    }

    fn comment(&self, text: &str) -> String {
        hash_comment(text)
    }

    fn assign(&self, name: &str, literal: &str) -> Result<String, ParamError> {
        Ok(format!("{name} = {literal}"))
    }
}
