use std::fmt;

/// Why a notebook could not be read.
///
/// The `Display` form is one line naming the place (line and column, or cell index
/// and key) and the problem; callers add the file name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The text is not JSON.
    #[error("not valid JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in bytes) of the error; 0 when the text is empty.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// The JSON is not shaped like a notebook.
    #[error("{place}: {problem}")]
    Structure {
        /// Where: `top level`, a key (`cells`), or a cell (`cells[2]`).
        place: String,
        /// What is wrong there.
        problem: String,
    },
    /// A notebook format this crate does not read.
    #[error("{0}")]
    UnsupportedVersion(String),
}

impl FormatError {
    pub(crate) fn structure(place: impl Into<String>, problem: impl Into<String>) -> Self {
        FormatError::Structure {
            place: place.into(),
            problem: problem.into(),
        }
    }
}

/// Something worth telling the user about a notebook that was still read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// A 4.x minor newer than the newest this crate knows (4.5).
    NewerMinor {
        /// The notebook's minor version.
        minor: u64,
    },
    /// A 4.5+ notebook had cells without ids; ids were added, as Python nbformat does.
    MissingIdsAdded {
        /// How many cells got an id.
        count: usize,
    },
    /// A 4.5+ notebook had cells whose id an earlier cell already had; they got fresh
    /// ids, as Python nbformat gives them on read.
    DuplicateIdsReplaced {
        /// Each replaced id and its replacement, in cell order.
        ids: Vec<(String, String)>,
    },
    /// An nbformat 3 notebook was upgraded to 4.5, as Python nbformat upgrades it.
    Upgraded {
        /// The notebook's major version.
        major: u64,
        /// The notebook's minor version.
        minor: u64,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NewerMinor { minor } => write!(
                f,
                "notebook is nbformat 4.{minor}, newer than 4.5; reading it as 4.5 and keeping every field"
            ),
            Warning::MissingIdsAdded { count } => {
                write!(
                    f,
                    "{count} cell(s) had no id; added fresh ids (nbformat 4.5 requires them)"
                )
            }
            Warning::DuplicateIdsReplaced { ids } => {
                let list = ids
                    .iter()
                    .map(|(old, new)| format!("{old:?} -> {new:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                write!(
                    f,
                    "non-unique cell id(s) replaced by fresh ones (nbformat 4.5 requires unique ids): {list}"
                )
            }
            Warning::Upgraded { major, minor } => write!(
                f,
                "notebook is nbformat {major}.{minor}; upgraded to 4.5 as Jupyter does"
            ),
        }
    }
}
