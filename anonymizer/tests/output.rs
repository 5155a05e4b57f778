//! The streaming dataset writers: every format read back and compared
//! exactly, the CSV formula guard, errors, and the `.partial` discipline.

use std::fs::File;
use std::path::{Path, PathBuf};

use anonymizer::output::{
    ColumnType, DatasetWriter, Format, OutputColumn, OutputError, WriteSummary, ROW_GROUP_MAX_ROWS,
};
use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value as Json;

fn columns() -> Vec<OutputColumn> {
    vec![
        OutputColumn::new("user", ColumnType::Text),
        OutputColumn::new("count", ColumnType::Integer),
        OutputColumn::new("score", ColumnType::Float),
        OutputColumn::new("note", ColumnType::Text),
    ]
}

fn cell(s: &str) -> Option<String> {
    Some(s.to_owned())
}

/// Rows with NULLs, empty strings, unicode, separators and quotes in
/// text, extreme integers and awkward floats.
fn rows() -> Vec<Vec<Option<String>>> {
    vec![
        vec![cell("p_0001"), cell("12"), cell("1.5"), cell("plain")],
        vec![None, None, None, None],
        vec![
            cell(""),
            cell("-9223372036854775808"),
            cell("-0.25"),
            cell(""),
        ],
        vec![
            cell("Łukasz Wójcik 🦀"),
            cell("9223372036854775807"),
            cell("1e300"),
            cell("a,b \"quoted\"\nsecond line\r\nthird"),
        ],
        vec![
            cell("tab\there"),
            cell("0"),
            cell("0.1"),
            cell("\"starts with a quote"),
        ],
        vec![cell("日本語"), cell("-1"), cell("-0.0"), None],
    ]
}

/// What each cell of [`rows`] reads back as (numbers normalized).
fn expected() -> Vec<Vec<Expected>> {
    use Expected::*;
    vec![
        vec![Str("p_0001"), Int(12), Float(1.5), Str("plain")],
        vec![Null, Null, Null, Null],
        vec![Str(""), Int(i64::MIN), Float(-0.25), Str("")],
        vec![
            Str("Łukasz Wójcik 🦀"),
            Int(i64::MAX),
            Float(1e300),
            Str("a,b \"quoted\"\nsecond line\r\nthird"),
        ],
        vec![
            Str("tab\there"),
            Int(0),
            Float(0.1),
            Str("\"starts with a quote"),
        ],
        vec![Str("日本語"), Int(-1), Float(-0.0), Null],
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expected {
    Null,
    Str(&'static str),
    Int(i64),
    Float(f64),
}

fn write(
    path: &Path,
    format: Format,
    columns: &[OutputColumn],
    rows: &[Vec<Option<String>>],
) -> WriteSummary {
    let mut writer = DatasetWriter::create(path, format, columns).unwrap();
    for row in rows {
        writer.write_row(row).unwrap();
    }
    let summary = writer.finish().unwrap();
    assert_eq!(summary.rows, rows.len() as u64);
    assert_eq!(summary.bytes, std::fs::metadata(path).unwrap().len());
    assert!(!partial(path).exists());
    summary
}

fn partial(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// A small RFC 4180 reader: records of fields, each field with whether it
/// was quoted. Requires every record to end with `\n`.
fn parse_csv(text: &str) -> Vec<Vec<(String, bool)>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut chars = text.chars().peekable();
    let mut field = String::new();
    let mut quoted = false;
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if at_field_start && c == '"' {
            quoted = true;
            at_field_start = false;
            loop {
                match chars.next().expect("unterminated quoted field") {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => break,
                    other => field.push(other),
                }
            }
            let next = chars.peek().copied();
            assert!(
                matches!(next, Some(',') | Some('\n')),
                "junk after a closing quote: {next:?}"
            );
            continue;
        }
        at_field_start = false;
        match c {
            ',' => {
                record.push((std::mem::take(&mut field), quoted));
                quoted = false;
                at_field_start = true;
            }
            '\n' => {
                record.push((std::mem::take(&mut field), quoted));
                records.push(std::mem::take(&mut record));
                quoted = false;
                at_field_start = true;
            }
            '"' => panic!("a bare quote inside an unquoted field"),
            '\r' => panic!("a bare CR inside an unquoted field"),
            other => field.push(other),
        }
    }
    assert!(record.is_empty() && field.is_empty(), "no final newline");
    records
}

#[test]
fn csv_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.csv");
    write(&path, Format::Csv, &columns(), &rows());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("user,count,score,note\n"));
    assert!(text.ends_with('\n'));
    let records = parse_csv(&text);
    assert_eq!(records.len(), rows().len() + 1);
    let header: Vec<&str> = records[0].iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(header, ["user", "count", "score", "note"]);
    for (record, want) in records[1..].iter().zip(expected()) {
        let got: Vec<&str> = record.iter().map(|(f, _)| f.as_str()).collect();
        let want: Vec<String> = want
            .iter()
            .map(|e| match e {
                // CSV has no NULL: it is an empty field, like "".
                Expected::Null => String::new(),
                Expected::Str(s) => (*s).to_owned(),
                Expected::Int(n) => n.to_string(),
                Expected::Float(x) => {
                    let s = serde_json::to_string(x).unwrap();
                    assert_eq!(s.parse::<f64>().unwrap().to_bits(), x.to_bits());
                    s
                }
            })
            .collect();
        assert_eq!(got, want);
    }
    // Only fields that need it are quoted.
    assert!(!records[1][0].1 && records[4][3].1 && records[5][3].1);
    // Line endings are `\n` (the CRLF inside a quoted field is data).
    assert_eq!(text.matches("\r\n").count(), 1);
}

#[test]
fn csv_numbers_are_written_normalized() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.csv");
    let cols = [
        OutputColumn::new("i", ColumnType::Integer),
        OutputColumn::new("x", ColumnType::Float),
    ];
    write(
        &path,
        Format::Csv,
        &cols,
        &[
            vec![cell("+007"), cell("+1.50")],
            vec![cell("-12"), cell("2.5E3")],
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "i,x\n7,1.5\n-12,2500.0\n"
    );
}

#[test]
fn csv_guards_formulas_for_every_leading_character() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    let cols = [
        OutputColumn::new("text", ColumnType::Text),
        OutputColumn::new("int", ColumnType::Integer),
    ];
    let cases: &[(&str, &str)] = &[
        (
            "=HYPERLINK(\"http://x\")",
            "\"'=HYPERLINK(\"\"http://x\"\")\"",
        ),
        ("=1+1", "'=1+1"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "\"'\r=1+1\""),
        ("=a,b", "\"'=a,b\""),
        // Numbers are data, not formulas.
        ("-12", "-12"),
        ("-1.5e3", "-1.5e3"),
        ("+42", "+42"),
        // Rust parses these as floats; a spreadsheet reads them as text.
        ("-inf", "'-inf"),
        ("+NaN", "'+NaN"),
        // Not at the start: nothing to guard.
        ("a=b", "a=b"),
        ("x-1", "x-1"),
        ("'=already", "'=already"),
    ];
    let rows: Vec<Vec<Option<String>>> = cases
        .iter()
        .map(|(text, _)| vec![cell(text), cell("-5")])
        .collect();
    write(&path, Format::Csv, &cols, &rows);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.split_terminator('\n');
    assert_eq!(lines.next(), Some("text,int"));
    let body: Vec<&str> = lines.collect();
    let want: Vec<String> = cases.iter().map(|(_, w)| format!("{w},-5")).collect();
    assert_eq!(body, want);
    // The guarded values read back with the `'` and nothing else changed.
    let records = parse_csv(&text);
    for ((value, _), record) in cases.iter().zip(&records[1..]) {
        let got = &record[0].0;
        if got != value {
            assert_eq!(got, &format!("'{value}"));
        }
    }
}

#[test]
fn csv_header_names_are_quoted_and_guarded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.csv");
    let cols = [
        OutputColumn::new("a,b", ColumnType::Text),
        OutputColumn::new("=x", ColumnType::Text),
        OutputColumn::new("say \"hi\"", ColumnType::Text),
    ];
    write(
        &path,
        Format::Csv,
        &cols,
        &[vec![None, cell(""), cell("v")]],
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "\"a,b\",'=x,\"say \"\"hi\"\"\"\n,,v\n"
    );
}

#[test]
fn jsonl_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.jsonl");
    write(&path, Format::Jsonl, &columns(), &rows());
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(lines.len(), rows().len());
    assert!(text.ends_with('\n'));
    assert_eq!(
        lines[0],
        r#"{"user":"p_0001","count":12,"score":1.5,"note":"plain"}"#
    );
    assert_eq!(
        lines[1],
        r#"{"user":null,"count":null,"score":null,"note":null}"#
    );
    for (line, want) in lines.iter().zip(expected()) {
        // Keys in column order.
        let positions: Vec<usize> = ["\"user\":", "\"count\":", "\"score\":", "\"note\":"]
            .iter()
            .map(|k| line.find(k).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
        let object: serde_json::Map<String, Json> = serde_json::from_str(line).unwrap();
        assert_eq!(object.len(), 4);
        for (column, want) in columns().iter().zip(want) {
            let got = &object[&column.name];
            match want {
                Expected::Null => assert!(got.is_null()),
                Expected::Str(s) => assert_eq!(got.as_str(), Some(s)),
                Expected::Int(n) => assert_eq!(got.as_i64(), Some(n), "{line}"),
                Expected::Float(x) => {
                    assert!(got.is_f64(), "{line}");
                    assert_eq!(got.as_f64().unwrap().to_bits(), x.to_bits(), "{line}");
                }
            }
        }
    }
}

#[test]
fn jsonl_keys_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.jsonl");
    let cols = [
        OutputColumn::new("say \"hi\"\n", ColumnType::Text),
        OutputColumn::new("ünï", ColumnType::Integer),
    ];
    write(
        &path,
        Format::Jsonl,
        &cols,
        &[vec![cell("\u{0}\\"), cell("3")]],
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let object: serde_json::Map<String, Json> = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(object["say \"hi\"\n"], Json::String("\u{0}\\".to_owned()));
    assert_eq!(object["ünï"], Json::from(3));
}

fn read_parquet(path: &Path) -> (usize, Vec<Vec<(String, Field)>>) {
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    let groups = reader.metadata().num_row_groups();
    let rows = reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            row.unwrap()
                .get_column_iter()
                .map(|(name, field)| (name.clone(), field.clone()))
                .collect()
        })
        .collect();
    (groups, rows)
}

#[test]
fn parquet_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.parquet");
    write(&path, Format::Parquet, &columns(), &rows());
    let (groups, got) = read_parquet(&path);
    assert_eq!(groups, 1);
    assert_eq!(got.len(), rows().len());
    for (row, want) in got.iter().zip(expected()) {
        let names: Vec<&str> = row.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["user", "count", "score", "note"]);
        for ((_, field), want) in row.iter().zip(want) {
            match (field, want) {
                (Field::Null, Expected::Null) => {}
                (Field::Str(s), Expected::Str(w)) => assert_eq!(s, w),
                (Field::Long(n), Expected::Int(w)) => assert_eq!(*n, w),
                (Field::Double(x), Expected::Float(w)) => assert_eq!(x.to_bits(), w.to_bits()),
                other => panic!("{other:?}"),
            }
        }
    }
    // The schema: OPTIONAL UTF8 / INT64 / DOUBLE, SNAPPY.
    let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let types: Vec<_> = (0..schema.num_columns())
        .map(|i| {
            let c = schema.column(i);
            (
                c.name().to_owned(),
                c.physical_type(),
                c.logical_type_ref().cloned(),
                c.self_type().get_basic_info().repetition(),
            )
        })
        .collect();
    let optional =
        |name: &str, physical, logical| (name.to_owned(), physical, logical, Repetition::OPTIONAL);
    assert_eq!(
        types,
        [
            optional("user", PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
            optional("count", PhysicalType::INT64, None),
            optional("score", PhysicalType::DOUBLE, None),
            optional("note", PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
        ]
    );
    for c in meta.row_group(0).columns() {
        assert_eq!(c.compression(), Compression::SNAPPY);
    }
}

#[test]
fn parquet_writes_several_row_groups_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    let cols = [
        OutputColumn::new("id", ColumnType::Integer),
        OutputColumn::new("name", ColumnType::Text),
        OutputColumn::new("half", ColumnType::Float),
    ];
    let n = 150_000u64;
    let mut writer = DatasetWriter::create(&path, Format::Parquet, &cols).unwrap();
    for i in 0..n {
        let name = (!i.is_multiple_of(7)).then(|| format!("name-{i}"));
        writer
            .write_row(&[
                Some(i.to_string()),
                name,
                Some(format!("{}", i as f64 / 2.0)),
            ])
            .unwrap();
    }
    assert_eq!(writer.rows(), n);
    let summary = writer.finish().unwrap();
    assert_eq!(summary.rows, n);
    let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
    let meta = reader.metadata();
    assert!(meta.num_row_groups() >= 3, "{}", meta.num_row_groups());
    assert!(meta
        .row_groups()
        .iter()
        .all(|g| g.num_rows() as usize <= ROW_GROUP_MAX_ROWS));
    assert_eq!(meta.file_metadata().num_rows(), n as i64);
    let mut count = 0u64;
    for (i, row) in reader.get_row_iter(None).unwrap().enumerate() {
        let row = row.unwrap();
        let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
        let i = i as u64;
        assert_eq!(fields[0], &Field::Long(i as i64));
        if i.is_multiple_of(7) {
            assert_eq!(fields[1], &Field::Null);
        } else {
            assert_eq!(fields[1], &Field::Str(format!("name-{i}")));
        }
        assert_eq!(fields[2], &Field::Double(i as f64 / 2.0));
        count += 1;
    }
    assert_eq!(count, n);
}

#[test]
fn parquet_takes_any_column_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.parquet");
    let names = [
        "with space",
        "with \"quotes\" and 'single'",
        "semi; colon { brace } (paren)",
        "optional binary x (UTF8);",
        "ünïcødé 名前 🦀",
        "dotted.name",
    ];
    let cols: Vec<OutputColumn> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let t = if i % 2 == 0 {
                ColumnType::Text
            } else {
                ColumnType::Integer
            };
            OutputColumn::new(*n, t)
        })
        .collect();
    let row: Vec<Option<String>> = (0..names.len()).map(|i| Some(i.to_string())).collect();
    write(&path, Format::Parquet, &cols, &[row]);
    let (_, got) = read_parquet(&path);
    let got_names: Vec<&str> = got[0].iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(got_names, names);
    assert_eq!(got[0][0].1, Field::Str("0".to_owned()));
    assert_eq!(got[0][1].1, Field::Long(1));
}

#[test]
fn empty_datasets_are_valid_files() {
    let dir = tempfile::tempdir().unwrap();
    for format in [Format::Csv, Format::Jsonl, Format::Parquet] {
        let path = dir.path().join(format!("empty.{}", format.extension()));
        let summary = write(&path, format, &columns(), &[]);
        assert_eq!(summary.rows, 0);
        match format {
            Format::Csv => assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                "user,count,score,note\n"
            ),
            Format::Jsonl => assert_eq!(summary.bytes, 0),
            Format::Parquet => {
                let (groups, rows) = read_parquet(&path);
                assert_eq!((groups, rows.len()), (0, 0));
            }
        }
    }
}

#[test]
fn a_bad_number_names_its_column_and_the_row_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    for format in [Format::Csv, Format::Jsonl, Format::Parquet] {
        let path = dir.path().join(format!("bad.{}", format.extension()));
        let mut writer = DatasetWriter::create(&path, format, &columns()).unwrap();
        writer
            .write_row(&[cell("a"), cell("1"), cell("2"), None])
            .unwrap();
        let long = "twelve thousand and three hundred";
        match writer.write_row(&[cell("b"), cell(long), cell("2"), None]) {
            Err(OutputError::Value {
                column,
                value_preview,
                message,
            }) => {
                assert_eq!(column, "count");
                assert_eq!(value_preview, "twelve thousand and ");
                assert!(message.contains("integer"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        for bad in ["NaN", "inf", "-infinity", "1e400", "1,5", " 1", ""] {
            match writer.write_row(&[cell("c"), cell("1"), cell(bad), None]) {
                Err(OutputError::Value { column, .. }) => assert_eq!(column, "score"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        for bad in ["9223372036854775808", "1.0", "0x10", "1e3", " 1"] {
            assert!(matches!(
                writer.write_row(&[cell("d"), cell(bad), None, None]),
                Err(OutputError::Value { .. })
            ));
        }
        // The writer goes on; the rejected rows left nothing behind.
        writer.write_row(&[cell("e"), None, None, None]).unwrap();
        assert_eq!(writer.finish().unwrap().rows, 2);
        let text_rows = match format {
            Format::Parquet => read_parquet(&path).1.len(),
            Format::Csv => parse_csv(&std::fs::read_to_string(&path).unwrap()).len() - 1,
            Format::Jsonl => std::fs::read_to_string(&path).unwrap().lines().count(),
        };
        assert_eq!(text_rows, 2, "{format:?}");
    }
}

#[test]
fn a_preview_is_twenty_characters_not_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.csv");
    let cols = [OutputColumn::new("n", ColumnType::Integer)];
    let mut writer = DatasetWriter::create(&path, Format::Csv, &cols).unwrap();
    let value = "ü".repeat(30);
    match writer.write_row(&[Some(value)]) {
        Err(OutputError::Value { value_preview, .. }) => {
            assert_eq!(value_preview, "ü".repeat(20))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_row_of_the_wrong_length_is_an_arity_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let mut writer = DatasetWriter::create(&path, Format::Jsonl, &columns()).unwrap();
    match writer.write_row(&[cell("a"), cell("1")]) {
        Err(OutputError::Arity { expected, got }) => assert_eq!((expected, got), (4, 2)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        writer.write_row(&[None, None, None, None, None]),
        Err(OutputError::Arity {
            expected: 4,
            got: 5
        })
    ));
}

#[test]
fn nothing_appears_at_the_path_until_finish() {
    let dir = tempfile::tempdir().unwrap();
    for format in [Format::Csv, Format::Jsonl, Format::Parquet] {
        let path = dir.path().join(format!("out.{}", format.extension()));
        let mut writer = DatasetWriter::create(&path, format, &columns()).unwrap();
        for i in 0..100_000 {
            writer
                .write_row(&[cell("u"), Some(i.to_string()), None, cell("n")])
                .unwrap();
        }
        assert!(writer
            .write_row(&[cell("u"), cell("x"), None, None])
            .is_err());
        assert!(!path.exists());
        assert!(partial(&path).exists());
        // Abandoned mid-way: the partial file goes too.
        drop(writer);
        assert!(!path.exists());
        assert!(!partial(&path).exists());
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn finish_replaces_an_older_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("again.csv");
    std::fs::write(&path, "old contents\n").unwrap();
    let cols = [OutputColumn::new("a", ColumnType::Text)];
    let mut writer = DatasetWriter::create(&path, Format::Csv, &cols).unwrap();
    writer.write_row(&[cell("new")]).unwrap();
    // The old file stays whole while the new one is written.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "old contents\n");
    writer.finish().unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nnew\n");
}

#[test]
fn a_missing_directory_is_an_io_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("x.parquet");
    match DatasetWriter::create(&path, Format::Parquet, &columns()) {
        Err(OutputError::Io { path: p, .. }) => assert_eq!(p, partial(&path)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn columns_must_be_some_and_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.csv");
    assert!(matches!(
        DatasetWriter::create(&path, Format::Csv, &[]),
        Err(OutputError::Columns { .. })
    ));
    let twice = [
        OutputColumn::new("a", ColumnType::Text),
        OutputColumn::new("a", ColumnType::Integer),
    ];
    assert!(matches!(
        DatasetWriter::create(&path, Format::Parquet, &twice),
        Err(OutputError::Columns { .. })
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn formats_parse_from_lowercase_names() {
    for (name, format, ext) in [
        ("csv", Format::Csv, "csv"),
        ("jsonl", Format::Jsonl, "jsonl"),
        ("parquet", Format::Parquet, "parquet"),
    ] {
        let parsed: Format = serde_json::from_value(Json::from(name)).unwrap();
        assert_eq!(parsed, format);
        assert_eq!(format.extension(), ext);
    }
    assert!(serde_json::from_value::<Format>(Json::from("Parquet")).is_err());
    assert_eq!(Format::default(), Format::Csv);
    let t: ColumnType = serde_json::from_value(Json::from("integer")).unwrap();
    assert_eq!(t, ColumnType::Integer);
}

#[test]
fn parquet_uses_a_dictionary_only_where_values_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dict.parquet");
    let cols = [
        OutputColumn::new("pseudonym", ColumnType::Text),
        OutputColumn::new("kind", ColumnType::Text),
        OutputColumn::new("row", ColumnType::Integer),
        OutputColumn::new("product", ColumnType::Integer),
    ];
    let n = 100_000;
    let mut writer = DatasetWriter::create(&path, Format::Parquet, &cols).unwrap();
    for i in 0..n {
        writer
            .write_row(&[
                Some(format!(
                    "p_{:024x}",
                    (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                )),
                Some(["view", "click", "purchase"][i % 3].to_owned()),
                Some(i.to_string()),
                Some((i % 50).to_string()),
            ])
            .unwrap();
    }
    writer.finish().unwrap();
    let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
    let meta = reader.metadata();
    assert_eq!(meta.num_row_groups(), 2);
    for group in meta.row_groups() {
        let dictionary: Vec<bool> = group
            .columns()
            .iter()
            .map(|c| c.dictionary_page_offset().is_some())
            .collect();
        assert_eq!(dictionary, [false, true, false, true]);
    }
    let (_, rows) = read_parquet(&path);
    assert_eq!(rows.len(), n);
    for (i, row) in rows.iter().enumerate().step_by(997) {
        assert_eq!(row[2].1, Field::Long(i as i64));
        assert_eq!(row[3].1, Field::Long((i % 50) as i64));
    }
}
