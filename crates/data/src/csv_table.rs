//! Reading named columns out of a CSV file, with the line of every record for messages.

use std::path::Path;

use crate::error::{DataError, Locus, Result};

/// One data record: where it starts and the wanted columns' values, in the asked order.
pub(crate) struct Row {
    pub at: Locus,
    pub values: Vec<String>,
}

/// Reads every record of `path`, keeping the columns named in `wanted`. Each entry of
/// `wanted` lists the header names accepted for one column (first = canonical, shown in
/// errors); header matching ignores case, surrounding spaces and a UTF-8 byte-order mark.
pub(crate) fn read_columns(path: &Path, wanted: &[&[&str]]) -> Result<Vec<Row>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let mut lines = LineCounter::new(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(&bytes[..]);
    let headers = reader
        .headers()
        .map_err(|e| csv_error(path, &e, &mut lines))?
        .clone();
    let names: Vec<String> = headers
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_lowercase())
        .collect();
    let mut columns = Vec::with_capacity(wanted.len());
    for accepted in wanted {
        let found = names
            .iter()
            .position(|n| accepted.iter().any(|a| n == &a.to_lowercase()));
        match found {
            Some(i) => columns.push(i),
            None => {
                return Err(DataError::MissingColumn {
                    path: path.to_path_buf(),
                    column: accepted.join("` or `"),
                    found: headers.iter().collect::<Vec<_>>().join(", "),
                });
            }
        }
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_error(path, &e, &mut lines))?;
        let line = record.position().map(|p| lines.line_at(p.byte()));
        let values = columns
            .iter()
            .map(|&c| record.get(c).unwrap_or("").to_string())
            .collect();
        rows.push(Row {
            at: Locus {
                path: path.to_path_buf(),
                line,
                record: i + 1,
            },
            values,
        });
    }
    Ok(rows)
}

/// 1-based line numbers of record starts. The `csv` crate's own `Position::line` (and
/// `byte`) point at the `\n` of a preceding `\r\n`, one line early in CRLF files (which
/// Python's `csv` module writes, and DEP-SEVERITY uses); so we skip line-break bytes from
/// the reported offset and count `\n`s ourselves. Offsets only grow, so counting resumes
/// where it stopped.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, byte: u64) -> u64 {
        let mut start = (byte as usize).min(self.bytes.len());
        while start < self.bytes.len() && matches!(self.bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        if start < self.offset {
            // Not expected (offsets grow); recount from the top rather than answer wrong.
            self.offset = 0;
            self.line = 1;
        }
        self.line += self.bytes[self.offset..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        self.offset = start;
        self.line
    }
}

fn csv_error(path: &Path, err: &csv::Error, lines: &mut LineCounter<'_>) -> DataError {
    let line = err.position().map(|p| lines.line_at(p.byte())).unwrap_or(0);
    let reason = match err.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_string(),
        _ => err.to_string(),
    };
    DataError::Csv {
        path: path.to_path_buf(),
        line,
        reason,
    }
}
