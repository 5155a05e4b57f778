//! Streaming dataset writers: CSV, JSON Lines and Parquet.
//!
//! Rows arrive one at a time as `Option<String>` cells (one per column,
//! `None` for NULL), already transformed; a [`DatasetWriter`] checks each
//! row against the declared [`OutputColumn`]s and appends it to the file.
//! Memory stays bounded: CSV and JSONL go straight through a 256 KiB
//! buffer, Parquet buffers at most one row group ([`ROW_GROUP_MAX_ROWS`]
//! rows or about [`ROW_GROUP_MAX_BYTES`] of cell data) before encoding it.
//!
//! The file is written as `PATH.partial` and renamed to `PATH` only by
//! [`DatasetWriter::finish`], after it has been flushed and fsynced: a
//! file at `PATH` is always complete. A writer dropped without `finish`
//! (an error, a cancelled export) removes its `.partial`; a crash may
//! leave one behind, never a truncated `PATH`.
//!
//! ```no_run
//! use anonymizer::output::{ColumnType, DatasetWriter, Format, OutputColumn};
//! # fn main() -> Result<(), anonymizer::output::OutputError> {
//! let columns = [
//!     OutputColumn::new("customer", ColumnType::Text),
//!     OutputColumn::new("orders", ColumnType::Integer),
//! ];
//! let path = std::path::Path::new("out/customers.parquet");
//! let mut writer = DatasetWriter::create(path, Format::Parquet, &columns)?;
//! writer.write_row(&[Some("p_3f2a".to_owned()), Some("12".to_owned())])?;
//! writer.write_row(&[Some("p_9c41".to_owned()), None])?;
//! let summary = writer.finish()?;
//! assert_eq!(summary.rows, 2);
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, Type, TypePtr};
use serde::Deserialize;

/// The most rows buffered (and written) in one Parquet row group.
pub const ROW_GROUP_MAX_ROWS: usize = 65_536;

/// The most cell data (text bytes, 8 bytes per number) buffered for one
/// Parquet row group: wide free-text rows flush before
/// [`ROW_GROUP_MAX_ROWS`].
pub const ROW_GROUP_MAX_BYTES: usize = 128 * 1024 * 1024;

/// How many leading rows of a Parquet file decide, per column, whether
/// dictionary encoding is worth it (see [`ParquetSink::properties`]).
const DICTIONARY_SAMPLE_ROWS: usize = 4096;

/// The buffer between every writer and its file.
const BUFFER_BYTES: usize = 256 * 1024;

/// How many characters of a rejected value an error quotes.
const VALUE_PREVIEW_CHARS: usize = 20;

/// A dataset file format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// RFC 4180 CSV with a header line and formula-injection guards.
    #[default]
    Csv,
    /// One JSON object per line, keys in column order.
    Jsonl,
    /// Apache Parquet, SNAPPY-compressed, one OPTIONAL column per column.
    Parquet,
}

impl Format {
    /// The file extension (without the dot).
    pub fn extension(&self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }
}

/// The output type of a column.
///
/// Cells always arrive as text; an `Integer` cell must parse as an `i64`
/// and a `Float` cell as a finite `f64` (Rust syntax: no surrounding
/// spaces). Numbers are written normalized in every format (`"+007"` is
/// written `7`), so CSV, JSONL and Parquet hold the same values.
///
/// | type      | Parquet               | JSONL  | CSV   |
/// |-----------|-----------------------|--------|-------|
/// | `Text`    | BYTE_ARRAY (UTF8)     | string | field |
/// | `Integer` | INT64                 | number | plain |
/// | `Float`   | DOUBLE                | number | plain |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Text,
    Integer,
    Float,
}

/// A column of the output: its name (any string) and type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutputColumn {
    pub name: String,
    pub column_type: ColumnType,
}

impl OutputColumn {
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        OutputColumn {
            name: name.into(),
            column_type,
        }
    }
}

/// What [`DatasetWriter::finish`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSummary {
    /// Data rows (a CSV header is not counted).
    pub rows: u64,
    /// The size of the file.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("writing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing Parquet {}: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    /// The columns given to [`DatasetWriter::create`] cannot make a
    /// dataset (none, or a name twice).
    #[error("dataset columns: {message}")]
    Columns { message: String },
    #[error("a row has {got} cells, the dataset has {expected} columns")]
    Arity { expected: usize, got: usize },
    #[error("column `{column}`: {message} (value `{value_preview}`)")]
    Value {
        column: String,
        /// The first 20 characters of the value.
        value_preview: String,
        message: String,
    },
}

/// Writes one dataset file, a row at a time.
///
/// [`write_row`](Self::write_row) rejects a row (arity, a number that does
/// not parse) before writing any of it, so after an
/// [`OutputError::Arity`] or [`OutputError::Value`] the writer can go on.
/// After an I/O or Parquet error the file is incomplete: every later call
/// fails, and the writer should be dropped (which removes `PATH.partial`).
#[derive(Debug)]
pub struct DatasetWriter {
    /// Declared (so dropped) before `partial`: the file is closed before
    /// an abandoned `.partial` is removed.
    sink: Sink,
    partial: PartialFile,
    path: PathBuf,
    columns: Vec<OutputColumn>,
    /// The cells of the row being written, parsed; reused between rows.
    cells: Vec<Cell>,
    rows: u64,
    failed: bool,
}

/// The format-specific half of a [`DatasetWriter`].
#[derive(Debug)]
enum Sink {
    Csv(BufWriter<File>),
    Jsonl {
        out: BufWriter<File>,
        /// Per column: `{"name":` or `,"name":`, serialized once.
        keys: Vec<Vec<u8>>,
    },
    Parquet(Box<ParquetSink>),
}

/// A cell of the current row, checked against its column type.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    Text,
    Integer(i64),
    Float(f64),
}

impl DatasetWriter {
    /// Creates `PATH.partial` (truncating any earlier one) and, for CSV,
    /// writes the header line. The parent directory must exist.
    pub fn create(
        path: &Path,
        format: Format,
        columns: &[OutputColumn],
    ) -> Result<DatasetWriter, OutputError> {
        check_columns(columns)?;
        let partial_path = partial_path(path);
        let file = File::create(&partial_path).map_err(|source| OutputError::Io {
            path: partial_path.clone(),
            source,
        })?;
        // From here on a failure removes the file again.
        let partial = PartialFile {
            path: partial_path,
            armed: true,
        };
        let out = BufWriter::with_capacity(BUFFER_BYTES, file);
        let sink = match format {
            Format::Csv => {
                let mut out = out;
                write_csv_header(&mut out, columns).map_err(|e| partial.io(e))?;
                Sink::Csv(out)
            }
            Format::Jsonl => Sink::Jsonl {
                out,
                keys: json_keys(columns).map_err(|e| partial.io(e))?,
            },
            Format::Parquet => Sink::Parquet(Box::new(
                ParquetSink::new(out, columns).map_err(|e| partial.parquet(e))?,
            )),
        };
        Ok(DatasetWriter {
            columns: columns.to_vec(),
            path: path.to_owned(),
            partial,
            cells: Vec::with_capacity(columns.len()),
            rows: 0,
            failed: false,
            sink,
        })
    }

    /// The columns, as given to [`create`](Self::create).
    pub fn columns(&self) -> &[OutputColumn] {
        &self.columns
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends one row: a cell per column, `None` for NULL.
    pub fn write_row(&mut self, row: &[Option<String>]) -> Result<(), OutputError> {
        self.check_usable()?;
        parse_row(&self.columns, row, &mut self.cells)?;
        let result = match &mut self.sink {
            Sink::Csv(out) => write_csv_row(out, row, &self.cells).map_err(|e| self.partial.io(e)),
            Sink::Jsonl { out, keys } => {
                write_json_row(out, keys, row, &self.cells).map_err(|e| self.partial.io(e))
            }
            Sink::Parquet(sink) => sink
                .push(row, &self.cells)
                .map_err(|e| self.partial.parquet(e)),
        };
        if result.is_err() {
            self.failed = true;
        }
        result?;
        self.rows += 1;
        Ok(())
    }

    /// Flushes what is buffered (the last Parquet row group and the
    /// footer), fsyncs the file, renames `PATH.partial` to `PATH` and
    /// returns what was written.
    pub fn finish(mut self) -> Result<WriteSummary, OutputError> {
        self.check_usable()?;
        let out = match self.sink {
            Sink::Csv(out) | Sink::Jsonl { out, .. } => out,
            Sink::Parquet(sink) => sink.finish().map_err(|e| self.partial.parquet(e))?,
        };
        let file = out
            .into_inner()
            .map_err(|e| self.partial.io(e.into_error()))?;
        file.sync_all().map_err(|e| self.partial.io(e))?;
        let bytes = file.metadata().map_err(|e| self.partial.io(e))?.len();
        drop(file);
        std::fs::rename(&self.partial.path, &self.path).map_err(|source| OutputError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.partial.armed = false;
        sync_parent_dir(&self.path);
        Ok(WriteSummary {
            rows: self.rows,
            bytes,
        })
    }

    fn check_usable(&self) -> Result<(), OutputError> {
        if self.failed {
            return Err(self.partial.io(io::Error::other(
                "an earlier write to this file failed; the dataset is incomplete",
            )));
        }
        Ok(())
    }
}

/// `PATH.partial`: the name a dataset has until it is complete.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".partial");
    PathBuf::from(name)
}

/// The file being written; removed when dropped unless disarmed by a
/// successful rename.
#[derive(Debug)]
struct PartialFile {
    path: PathBuf,
    armed: bool,
}

impl PartialFile {
    fn io(&self, source: io::Error) -> OutputError {
        OutputError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn parquet(&self, e: ParquetError) -> OutputError {
        OutputError::Parquet {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: the writer is being abandoned, possibly while
            // an error is reported; there is nobody to tell.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Makes the rename durable (Unix); best effort, as the data itself is
/// already synced and some file systems refuse to sync a directory.
fn sync_parent_dir(path: &Path) {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn check_columns(columns: &[OutputColumn]) -> Result<(), OutputError> {
    if columns.is_empty() {
        return Err(OutputError::Columns {
            message: "a dataset needs at least one column".to_owned(),
        });
    }
    let mut seen = HashSet::with_capacity(columns.len());
    for c in columns {
        if !seen.insert(c.name.as_str()) {
            return Err(OutputError::Columns {
                message: format!("the column name `{}` appears twice", c.name),
            });
        }
    }
    Ok(())
}

/// Checks `row` against `columns`, filling `cells` with the parsed values.
fn parse_row(
    columns: &[OutputColumn],
    row: &[Option<String>],
    cells: &mut Vec<Cell>,
) -> Result<(), OutputError> {
    if row.len() != columns.len() {
        return Err(OutputError::Arity {
            expected: columns.len(),
            got: row.len(),
        });
    }
    cells.clear();
    for (column, value) in columns.iter().zip(row) {
        let cell = match (value, column.column_type) {
            (None, _) => Cell::Null,
            (Some(_), ColumnType::Text) => Cell::Text,
            (Some(v), ColumnType::Integer) => match v.parse::<i64>() {
                Ok(n) => Cell::Integer(n),
                Err(e) => {
                    return Err(value_error(
                        column,
                        v,
                        format!("not a 64-bit integer ({e})"),
                    ))
                }
            },
            (Some(v), ColumnType::Float) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() => Cell::Float(x),
                Ok(_) => return Err(value_error(column, v, "not a finite number".to_owned())),
                Err(e) => return Err(value_error(column, v, format!("not a number ({e})"))),
            },
        };
        cells.push(cell);
    }
    Ok(())
}

fn value_error(column: &OutputColumn, value: &str, message: String) -> OutputError {
    OutputError::Value {
        column: column.name.clone(),
        value_preview: value.chars().take(VALUE_PREVIEW_CHARS).collect(),
        message,
    }
}

// ---------------------------------------------------------------- CSV

fn write_csv_header(out: &mut impl Write, columns: &[OutputColumn]) -> io::Result<()> {
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_csv_text(out, &c.name)?;
    }
    out.write_all(b"\n")
}

fn write_csv_row(out: &mut impl Write, row: &[Option<String>], cells: &[Cell]) -> io::Result<()> {
    for (i, (value, cell)) in row.iter().zip(cells).enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        match (cell, value) {
            (Cell::Text, Some(v)) => write_csv_text(out, v)?,
            (Cell::Integer(n), _) => write!(out, "{n}")?,
            (Cell::Float(x), _) => write_float(&mut *out, *x)?,
            // NULL: an empty field.
            _ => {}
        }
    }
    out.write_all(b"\n")
}

/// Whether a spreadsheet could run `value` as a formula: it starts with
/// `=`, `+`, `-`, `@`, tab or carriage return and is not a number (so
/// `-12` and `+1.5e3` stay as they are).
fn needs_formula_guard(value: &str) -> bool {
    // Only a finite number is harmless: `-inf` and `+NaN` parse as floats
    // but are text to a spreadsheet.
    value.starts_with(['=', '+', '-', '@', '\t', '\r'])
        && !value.parse::<f64>().is_ok_and(f64::is_finite)
}

/// One CSV text field: a leading `'` if it could be a formula, then RFC
/// 4180 quoting (in double quotes, `"` doubled) if it holds `,`, `"`, CR
/// or LF.
fn write_csv_text(out: &mut impl Write, value: &str) -> io::Result<()> {
    let guard = needs_formula_guard(value);
    let quote = value
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if quote {
        out.write_all(b"\"")?;
    }
    if guard {
        out.write_all(b"'")?;
    }
    if quote {
        let mut rest = value;
        while let Some(at) = rest.find('"') {
            out.write_all(&rest.as_bytes()[..=at])?;
            out.write_all(b"\"")?;
            rest = &rest[at + 1..];
        }
        out.write_all(rest.as_bytes())?;
        out.write_all(b"\"")
    } else {
        out.write_all(value.as_bytes())
    }
}

/// A finite float in its shortest round-trip form (`1.5`, `1e300`, `-0.0`).
fn write_float(out: &mut impl Write, x: f64) -> io::Result<()> {
    serde_json::to_writer(out, &x).map_err(io::Error::from)
}

// ---------------------------------------------------------------- JSONL

fn json_keys(columns: &[OutputColumn]) -> io::Result<Vec<Vec<u8>>> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut key = vec![if i == 0 { b'{' } else { b',' }];
            serde_json::to_writer(&mut key, &c.name)?;
            key.push(b':');
            Ok(key)
        })
        .collect()
}

fn write_json_row(
    out: &mut impl Write,
    keys: &[Vec<u8>],
    row: &[Option<String>],
    cells: &[Cell],
) -> io::Result<()> {
    for ((key, value), cell) in keys.iter().zip(row).zip(cells) {
        out.write_all(key)?;
        match (cell, value) {
            (Cell::Text, Some(v)) => serde_json::to_writer(&mut *out, v.as_str())?,
            (Cell::Integer(n), _) => write!(out, "{n}")?,
            (Cell::Float(x), _) => write_float(&mut *out, *x)?,
            _ => out.write_all(b"null")?,
        }
    }
    out.write_all(b"}\n")
}

// ---------------------------------------------------------------- Parquet

/// A Parquet file being written, with the row group being buffered.
struct ParquetSink {
    schema: TypePtr,
    names: Vec<String>,
    /// The file, until the first row group is written and the writer made.
    out: Option<BufWriter<File>>,
    writer: Option<SerializedFileWriter<BufWriter<File>>>,
    columns: Vec<ColumnBuffer>,
    /// Rows and cell bytes in the buffers.
    rows: usize,
    bytes: usize,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("rows", &self.rows)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// One column of the buffered row group: a definition level per row (1
/// for a value, 0 for NULL) and the non-NULL values. Reused between row
/// groups, so the steady state allocates one text buffer per column and
/// row group, not one per cell.
struct ColumnBuffer {
    def_levels: Vec<i16>,
    values: ColumnValues,
}

impl ColumnBuffer {
    /// Whether more than half the non-NULL values among the first `rows`
    /// rows are distinct (and there are enough of them to tell).
    fn mostly_distinct(&self, rows: usize) -> bool {
        const MIN_VALUES: usize = 256;
        let values = self.def_levels[..rows.min(self.def_levels.len())]
            .iter()
            .filter(|&&d| d == 1)
            .count();
        if values < MIN_VALUES {
            return false;
        }
        let distinct = match &self.values {
            ColumnValues::Text { data, ends, .. } => {
                let mut start = 0;
                ends[..values]
                    .iter()
                    .map(|&end| {
                        let value = &data[start..end];
                        start = end;
                        value
                    })
                    .collect::<HashSet<&[u8]>>()
                    .len()
            }
            ColumnValues::Integer(v) => v[..values].iter().collect::<HashSet<_>>().len(),
            ColumnValues::Float(v) => v[..values]
                .iter()
                .map(|x| x.to_bits())
                .collect::<HashSet<_>>()
                .len(),
        };
        distinct * 2 > values
    }
}

enum ColumnValues {
    Text {
        /// The UTF-8 of every value, end to end.
        data: Vec<u8>,
        /// Where each value ends in `data`.
        ends: Vec<usize>,
        /// Slices of one shared buffer, made when the row group is written.
        arrays: Vec<ByteArray>,
    },
    Integer(Vec<i64>),
    Float(Vec<f64>),
}

impl ParquetSink {
    fn new(out: BufWriter<File>, columns: &[OutputColumn]) -> Result<Self, ParquetError> {
        let fields = columns
            .iter()
            .map(|c| {
                let builder = match c.column_type {
                    ColumnType::Text => {
                        Type::primitive_type_builder(&c.name, PhysicalType::BYTE_ARRAY)
                            .with_logical_type(Some(LogicalType::String))
                    }
                    ColumnType::Integer => {
                        Type::primitive_type_builder(&c.name, PhysicalType::INT64)
                    }
                    ColumnType::Float => {
                        Type::primitive_type_builder(&c.name, PhysicalType::DOUBLE)
                    }
                };
                builder
                    .with_repetition(Repetition::OPTIONAL)
                    .build()
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let schema = Type::group_type_builder("schema")
            .with_fields(fields)
            .build()?;
        let buffers = columns
            .iter()
            .map(|c| ColumnBuffer {
                def_levels: Vec::new(),
                values: match c.column_type {
                    ColumnType::Text => ColumnValues::Text {
                        data: Vec::new(),
                        ends: Vec::new(),
                        arrays: Vec::new(),
                    },
                    ColumnType::Integer => ColumnValues::Integer(Vec::new()),
                    ColumnType::Float => ColumnValues::Float(Vec::new()),
                },
            })
            .collect();
        Ok(ParquetSink {
            schema: Arc::new(schema),
            names: columns.iter().map(|c| c.name.clone()).collect(),
            out: Some(out),
            writer: None,
            columns: buffers,
            rows: 0,
            bytes: 0,
        })
    }

    /// Buffers a checked row; writes the row group when it is full.
    fn push(&mut self, row: &[Option<String>], cells: &[Cell]) -> Result<(), ParquetError> {
        for ((buffer, value), cell) in self.columns.iter_mut().zip(row).zip(cells) {
            let present = match (&mut buffer.values, cell, value) {
                (ColumnValues::Text { data, ends, .. }, Cell::Text, Some(v)) => {
                    data.extend_from_slice(v.as_bytes());
                    ends.push(data.len());
                    self.bytes += v.len();
                    true
                }
                (ColumnValues::Integer(values), Cell::Integer(n), _) => {
                    values.push(*n);
                    self.bytes += 8;
                    true
                }
                (ColumnValues::Float(values), Cell::Float(x), _) => {
                    values.push(*x);
                    self.bytes += 8;
                    true
                }
                _ => false,
            };
            buffer.def_levels.push(i16::from(present));
        }
        self.rows += 1;
        if self.rows >= ROW_GROUP_MAX_ROWS || self.bytes >= ROW_GROUP_MAX_BYTES {
            self.flush_row_group()?;
        }
        Ok(())
    }

    /// SNAPPY, and dictionary encoding only for the columns it pays for.
    ///
    /// parquet-rs interns every value of a dictionary-enabled column until
    /// the dictionary passes 1 MiB, then falls back to plain encoding, in
    /// every row group: cheap and compact for kinds, dates or catalogue
    /// ids, but for mostly-unique values (pseudonyms, row ids) it is work
    /// thrown away (with one pseudonym column, about an eighth of the
    /// bench's write time). So a column whose first
    /// [`DICTIONARY_SAMPLE_ROWS`] rows hold more than half distinct values
    /// is written without one.
    fn properties(&self) -> WriterProperties {
        let sample = self.rows.min(DICTIONARY_SAMPLE_ROWS);
        let mut builder = WriterProperties::builder().set_compression(Compression::SNAPPY);
        for (name, buffer) in self.names.iter().zip(&self.columns) {
            if buffer.mostly_distinct(sample) {
                builder = builder
                    .set_column_dictionary_enabled(ColumnPath::new(vec![name.clone()]), false);
            }
        }
        builder.build()
    }

    /// Makes the file writer (which writes the file's magic) at the first
    /// row group, once [`properties`](Self::properties) can look at rows.
    fn start(&mut self) -> Result<(), ParquetError> {
        if let Some(out) = self.out.take() {
            let properties = Arc::new(self.properties());
            self.writer = Some(SerializedFileWriter::new(
                out,
                self.schema.clone(),
                properties,
            )?);
        }
        Ok(())
    }

    /// Encodes the buffered rows as one row group and empties the buffers.
    fn flush_row_group(&mut self) -> Result<(), ParquetError> {
        if self.rows == 0 {
            return Ok(());
        }
        self.start()?;
        let Some(writer) = self.writer.as_mut() else {
            return Err(not_started());
        };
        let mut row_group = writer.next_row_group()?;
        for buffer in &mut self.columns {
            let Some(mut column) = row_group.next_column()? else {
                return Err(ParquetError::General(
                    "the schema has fewer columns than the dataset".to_owned(),
                ));
            };
            let def_levels = Some(buffer.def_levels.as_slice());
            match (column.untyped(), &mut buffer.values) {
                (
                    ColumnWriter::ByteArrayColumnWriter(w),
                    ColumnValues::Text { data, ends, arrays },
                ) => {
                    // One shared buffer, sliced without copying.
                    let shared = ByteArray::from(std::mem::replace(
                        data,
                        Vec::with_capacity(data.capacity()),
                    ));
                    let mut start = 0;
                    arrays.extend(ends.iter().map(|&end| {
                        let value = shared.slice(start, end - start);
                        start = end;
                        value
                    }));
                    w.write_batch(arrays, def_levels, None)?;
                    arrays.clear();
                    ends.clear();
                }
                (ColumnWriter::Int64ColumnWriter(w), ColumnValues::Integer(values)) => {
                    w.write_batch(values, def_levels, None)?;
                    values.clear();
                }
                (ColumnWriter::DoubleColumnWriter(w), ColumnValues::Float(values)) => {
                    w.write_batch(values, def_levels, None)?;
                    values.clear();
                }
                _ => {
                    return Err(ParquetError::General(
                        "a column writer does not match its column type".to_owned(),
                    ))
                }
            }
            column.close()?;
            buffer.def_levels.clear();
        }
        row_group.close()?;
        self.rows = 0;
        self.bytes = 0;
        Ok(())
    }

    /// Writes the last row group and the footer; returns the file's buffer.
    fn finish(mut self) -> Result<BufWriter<File>, ParquetError> {
        self.flush_row_group()?;
        // No rows: the writer is still to be made.
        self.start()?;
        match self.writer {
            Some(writer) => writer.into_inner(),
            None => Err(not_started()),
        }
    }
}

/// A Parquet writer that should exist does not: making it failed before.
fn not_started() -> ParquetError {
    ParquetError::General("the Parquet writer could not be started".to_owned())
}
