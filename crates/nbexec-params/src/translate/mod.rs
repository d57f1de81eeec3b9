//! Translators: parameter values to source code in the kernel's language, chosen as
//! papermill chooses them (kernel name first, then language).

mod bash;
mod julia;
mod python;
mod r;

pub use bash::{BashTranslator, shlex_quote as bash_shlex_quote};
pub use julia::JuliaTranslator;
pub use python::PythonTranslator;
pub use r::RTranslator;

use crate::coerce::check_name;
use crate::error::{Origin, ParamError};
use crate::inspect::ParamSpec;
use crate::value::Value;

/// Writes parameters as source code in one language.
///
/// `render` is papermill's `codify`: a comment line, then one assignment per
/// parameter, each line ending in `\n`.
pub trait Translator: Send + Sync {
    /// The language's name, for messages (`python`, `R`, `julia`, `bash`).
    fn language(&self) -> &'static str;

    /// The literal for one value; `name` is the parameter it belongs to (for errors).
    fn literal(&self, name: &str, value: &Value) -> Result<String, ParamError>;

    /// The literal for one value as it is written in the cell for all of `params`
    /// (a language may need to know the cell's other names, e.g. to avoid one
    /// shadowing a name its literals use). By default [`literal`](Self::literal).
    fn literal_in_cell(
        &self,
        name: &str,
        value: &Value,
        _params: &[(String, Value)],
    ) -> Result<String, ParamError> {
        self.literal(name, value)
    }

    /// A comment line (papermill: `# {text}`, stripped).
    fn comment(&self, text: &str) -> String;

    /// One assignment statement, without its newline.
    fn assign(&self, name: &str, literal: &str) -> Result<String, ParamError>;

    /// Lines the cell needs before the assignments (imports), if any.
    fn preamble(&self, _params: &[(String, Value)]) -> Vec<String> {
        Vec::new()
    }

    /// The whole cell source: comment, preamble, assignments. Names are checked
    /// again here (identifiers, not keywords), whatever built the list, since a name
    /// is written into the code as it is.
    fn render(&self, params: &[(String, Value)], comment: &str) -> Result<String, ParamError> {
        for (name, _) in params {
            check_name(name).map_err(|problem| ParamError::InvalidName {
                name: name.clone(),
                origin: Origin::Program,
                problem,
            })?;
        }
        let mut out = self.comment(comment);
        out.push('\n');
        for line in self.preamble(params) {
            out.push_str(&line);
            out.push('\n');
        }
        for (name, value) in params {
            let literal = self.literal_in_cell(name, value, params)?;
            out.push_str(&self.assign(name, &literal)?);
            out.push('\n');
        }
        Ok(out)
    }

    /// The assignments of a `parameters` cell, if this language can be inspected.
    fn inspect(&self, _source: &str) -> Option<Vec<ParamSpec>> {
        None
    }
}

static PYTHON: PythonTranslator = PythonTranslator;
static R: RTranslator = RTranslator;
static JULIA: JuliaTranslator = JuliaTranslator;
static BASH: BashTranslator = BashTranslator;

/// papermill's registry: the key is matched against the kernel name, then the
/// language.
const REGISTRY: &[(&str, &dyn Translator)] = &[
    ("python", &PYTHON),
    ("R", &R),
    ("julia", &JULIA),
    ("pysparkkernel", &PYTHON),
    ("sparkrkernel", &R),
    ("bash", &BASH),
];

/// Picks the translator as papermill does: the kernel name, then the language, each
/// first exactly and then ignoring case. Where neither matches, a kernel name that
/// names its language (`python3`, `ir`, `julia-1.10`) still finds it; papermill
/// would refuse these.
pub fn find_translator(
    kernel_name: Option<&str>,
    language: Option<&str>,
) -> Result<&'static dyn Translator, ParamError> {
    let exact = |key: Option<&str>| {
        let key = key?;
        REGISTRY
            .iter()
            .find(|(k, _)| *k == key)
            .or_else(|| REGISTRY.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
            .map(|(_, t)| *t)
    };
    if let Some(t) = exact(kernel_name).or_else(|| exact(language)) {
        return Ok(t);
    }
    if let Some(kernel) = kernel_name.map(str::to_ascii_lowercase) {
        let by_prefix: Option<&'static dyn Translator> =
            if kernel.starts_with("python") || kernel.starts_with("ipython") {
                Some(&PYTHON)
            } else if kernel == "ir" || kernel.starts_with("ir-") {
                Some(&R)
            } else if kernel.starts_with("julia") {
                Some(&JULIA)
            } else {
                None
            };
        if let Some(t) = by_prefix {
            return Ok(t);
        }
    }
    Err(ParamError::NoTranslator {
        kernel: kernel_name.map(str::to_owned),
        language: language.map(str::to_owned),
    })
}

/// papermill's `translate_escaped_str` for Python, R and Julia: `unicode_escape`,
/// then `"` → `\"`, in double quotes.
pub(crate) fn python_style_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut escaped = String::with_capacity(s.len());
    crate::pyrepr::unicode_escape(s, &mut escaped);
    for c in escaped.chars() {
        if c == '"' {
            out.push_str("\\\"");
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// papermill's `comment`: `# {text}` with surrounding whitespace stripped.
///
/// Line breaks in `text` become spaces so that the comment cannot end early and turn
/// the rest into code (papermill does not guard this; its comment is fixed).
pub(crate) fn hash_comment(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if matches!(c, '\n' | '\r') { ' ' } else { c })
        .collect();
    crate::pyrepr::python_strip(&format!("# {one_line}")).to_owned()
}
