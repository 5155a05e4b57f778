//! Functions a query may call. Everything else is refused: extension
//! loaders, file and network functions, SQLite's introspection functions, and
//! Privet's own internal functions (a caller who could compute
//! `privet_pseudonym` over guessed values could reverse pseudonyms).

/// SQLite functions allowed in governed queries (lower case).
const SQLITE_ALLOWED: &[&str] = &[
    // scalar
    "abs",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "glob",
    "hex",
    "ifnull",
    "iif",
    "instr",
    "length",
    "like",
    "lower",
    "ltrim",
    "max",
    "min",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "random",
    "replace",
    "round",
    "rtrim",
    "sign",
    "substr",
    "substring",
    "trim",
    "typeof",
    "unicode",
    "upper",
    // math
    "acos",
    "asin",
    "atan",
    "atan2",
    "ceil",
    "ceiling",
    "cos",
    "exp",
    "floor",
    "ln",
    "log",
    "log10",
    "log2",
    "mod",
    "pi",
    "pow",
    "power",
    "sin",
    "sqrt",
    "tan",
    "trunc",
    // date and time
    "date",
    "time",
    "datetime",
    "julianday",
    "strftime",
    "unixepoch",
    "timediff",
    // aggregate
    "avg",
    "count",
    "group_concat",
    "string_agg",
    "sum",
    "total",
    // window
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
];

/// Whether `name` (as written) may be called.
pub fn is_allowed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SQLITE_ALLOWED.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_functions_pass_and_dangerous_ones_do_not() {
        for f in [
            "lower",
            "COUNT",
            "Substr",
            "strftime",
            "row_number",
            "group_concat",
        ] {
            assert!(is_allowed(f), "{f}");
        }
        for f in [
            "load_extension",
            "readfile",
            "writefile",
            "fts3_tokenizer",
            "sqlite_version",
            "sqlite_compileoption_get",
            "privet_pseudonym",
            "json_each",
            "pg_read_file",
            "dblink",
        ] {
            assert!(!is_allowed(f), "{f}");
        }
    }
}
