use std::path::PathBuf;

/// Errors of the data readers, label rules and metrics.
///
/// Every variant about a file names the file and, where there is one, the 1-based line
/// (CSV, JSONL) or record number (JSON lists), so a user can open the file at the spot.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: malformed CSV record: {reason}")]
    Csv {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{path}: missing column `{column}` (the header has: {found})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        found: String,
    },
    #[error("{path}:{line}: invalid JSON: {reason}")]
    Json {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{at}: {reason}")]
    BadRecord { at: Locus, reason: String },
    #[error(
        "{at}: the query is not `Consider this post: \"<post>\" Question: <question>`: {reason}"
    )]
    BadQuery { at: Locus, reason: String },
    #[error("{at}: empty post")]
    EmptyPost { at: Locus },
    #[error("{at}: empty {field}")]
    EmptyField { at: Locus, field: &'static str },
    #[error(
        "{at}: unknown DEP-SEVERITY label `{label}` (expected minimum, mild, moderate or severe)"
    )]
    BadSeverityLabel { at: Locus, label: String },
    #[error("unknown dataset `{name}`; known datasets: {known}")]
    UnknownDataset { name: String, known: String },
    #[error("unknown split `{name}`; known splits: test, train, val")]
    UnknownSplit { name: String },
    #[error("{dataset} has no `{split}` file at {path}{hint}")]
    MissingSplit {
        dataset: String,
        split: String,
        path: PathBuf,
        hint: String,
    },
    #[error("{what}: {left_name} has {left} entries but {right_name} has {right}")]
    LengthMismatch {
        what: &'static str,
        left_name: &'static str,
        left: usize,
        right_name: &'static str,
        right: usize,
    },
    #[error("{what}: no examples to score")]
    Empty { what: &'static str },
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Write {
            path: path.into(),
            source,
        }
    }
}

/// Where a record sits in its file: the 1-based line where a CSV or JSONL record starts,
/// or the 1-based record number in a JSON list (which has no useful line).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Locus {
    pub path: PathBuf,
    pub line: Option<u64>,
    pub record: usize,
}

impl std::fmt::Display for Locus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.path.display()),
            None => write!(f, "{}: record {}", self.path.display(), self.record),
        }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
