//! Functions a query may call. Everything else is refused: extension
//! loaders, file and network functions, SQLite's introspection functions, and
//! Privet's own internal functions (a caller who could compute
//! `privet_pseudonym` over guessed values could reverse pseudonyms).

use crate::masks::Dialect;

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

/// PostgreSQL functions allowed in governed queries (lower case). Left out
/// on purpose: settings (`current_setting`, `set_config`: the pseudonym keys
/// live in session settings), every `pg_*`, `lo_*`, `dblink*`, `*_to_xml`
/// (they run queries of their own), catalog casts (`to_regclass`),
/// `version`, `current_user`, sequences, sleeps and set-returning functions.
const POSTGRES_ALLOWED: &[&str] = &[
    // string
    "ascii",
    "btrim",
    "char_length",
    "character_length",
    "chr",
    "coalesce",
    "concat",
    "concat_ws",
    "greatest",
    "initcap",
    "least",
    "left",
    "length",
    "lower",
    "lpad",
    "ltrim",
    "md5",
    "nullif",
    "octet_length",
    "position",
    "repeat",
    "replace",
    "reverse",
    "right",
    "rpad",
    "rtrim",
    "split_part",
    "starts_with",
    "strpos",
    "substr",
    "substring",
    "translate",
    "trim",
    "upper",
    // math
    "abs",
    "cbrt",
    "ceil",
    "ceiling",
    "degrees",
    "div",
    "exp",
    "floor",
    "ln",
    "log",
    "log10",
    "mod",
    "pi",
    "power",
    "radians",
    "random",
    "round",
    "sign",
    "sqrt",
    "trunc",
    "width_bucket",
    "acos",
    "asin",
    "atan",
    "atan2",
    "cos",
    "sin",
    "tan",
    // date and time
    "age",
    "date_part",
    "date_trunc",
    "extract",
    "make_date",
    "make_timestamp",
    "now",
    "to_char",
    "to_date",
    "to_timestamp",
    // aggregate
    "avg",
    "bool_and",
    "bool_or",
    "count",
    "every",
    "max",
    "min",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "sum",
    "var_pop",
    "var_samp",
    "variance",
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

/// Whether `name` (as written) may be called on a `dialect` backend.
pub fn is_allowed(name: &str, dialect: Dialect) -> bool {
    let lower = name.to_ascii_lowercase();
    match dialect {
        Dialect::Sqlite => SQLITE_ALLOWED.contains(&lower.as_str()),
        Dialect::Postgres => POSTGRES_ALLOWED.contains(&lower.as_str()),
    }
}

/// Aggregate functions of both dialects (lower case).
const AGGREGATES: &[&str] = &[
    "avg",
    "bool_and",
    "bool_or",
    "count",
    "every",
    "group_concat",
    "max",
    "min",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "sum",
    "total",
    "var_pop",
    "var_samp",
    "variance",
];

/// Whether a call of `name` with `args` arguments, not windowed, folds many
/// rows into one. SQLite's `min(a, b)` and `max(a, b)` are scalar.
pub fn is_aggregate(name: &str, args: usize) -> bool {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "min" | "max" => args <= 1,
        other => AGGREGATES.contains(&other),
    }
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
            assert!(is_allowed(f, Dialect::Sqlite), "{f}");
        }
        for f in ["lower", "COUNT", "date_trunc", "string_agg", "right"] {
            assert!(is_allowed(f, Dialect::Postgres), "{f}");
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
            "current_setting",
            "set_config",
            "pg_sleep",
            "pg_ls_dir",
            "query_to_xml",
            "lo_import",
            "to_regclass",
            "version",
            "nextval",
            "generate_series",
        ] {
            assert!(!is_allowed(f, Dialect::Sqlite), "{f}");
            assert!(!is_allowed(f, Dialect::Postgres), "{f}");
        }
    }

    #[test]
    fn aggregates_are_told_from_scalars() {
        assert!(is_aggregate("COUNT", 1));
        assert!(is_aggregate("max", 1));
        assert!(
            !is_aggregate("max", 2),
            "SQLite's two-argument max is scalar"
        );
        assert!(!is_aggregate("lower", 1));
        assert!(!is_aggregate("row_number", 0));
    }
}
