//! SQL fingerprints for the audit log: the statement's tokens with every
//! literal replaced by `?`, so the log records what was asked without
//! becoming a second copy of the personal data in it
//! (`WHERE email = 'ann@example.com'` → `WHERE email = ?`).
//!
//! The rules keep what is known to be a name or syntax and replace the rest
//! (fail closed): literals of every kind, stray characters and custom
//! operators become `?`. Whether a word is a name depends on how far the
//! statement got: in a statement whose names were all resolved against the
//! catalog, every identifier is a name; in one that failed to parse or
//! resolve, a "word" may be data (an unquoted `ann@example.com` tokenizes as
//! words), so only keywords and names the catalog knows are kept.

use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::catalog::Catalog;
use crate::masks::Dialect;

/// Fingerprints longer than this are cut (a 10,000-item IN list says no
/// more than its first items).
pub const MAX_FINGERPRINT_CHARS: usize = 2048;

/// How much of the statement was checked against the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// Every identifier resolved (the statement was authorized or denied by
    /// policy): identifiers are names.
    Resolved,
    /// Parsing or resolution failed: an identifier may be data.
    Unchecked,
}

/// The fingerprint of `sql`, or `None` when it does not even tokenize (an
/// unterminated string, say): then nothing of the text is kept.
pub fn fingerprint(sql: &str, dialect: Dialect, names: Names, catalog: &Catalog) -> Option<String> {
    let tokens = match dialect {
        Dialect::Sqlite => Tokenizer::new(&SQLiteDialect {}, sql).tokenize(),
        Dialect::Postgres => Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize(),
    }
    .ok()?;
    let mut out = String::with_capacity(sql.len().min(MAX_FINGERPRINT_CHARS));
    let mut pending_space = false;
    for token in &tokens {
        let piece: std::borrow::Cow<'_, str> = match token {
            Token::Whitespace(_) => {
                pending_space = !out.is_empty();
                continue;
            }
            Token::EOF => continue,
            Token::Word(word) => {
                let known = || is_known_name(catalog, dialect, &word.value);
                let keep = match (names, word.quote_style) {
                    (Names::Resolved, None) => true,
                    // Belt and braces: a quoted name that passed resolution
                    // is an alias or a catalog name; one that does not look
                    // like an identifier is not kept even then.
                    (Names::Resolved, Some(_)) => plain_identifier(&word.value) || known(),
                    (Names::Unchecked, None) => word.keyword != Keyword::NoKeyword || known(),
                    (Names::Unchecked, Some(_)) => known(),
                };
                if keep {
                    token.to_string().into()
                } else {
                    "?".into()
                }
            }
            Token::Placeholder(_) => token.to_string().into(),
            other if carries_text(other) => "?".into(),
            other => other.to_string().into(),
        };
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push_str(&piece);
        if out.len() > MAX_FINGERPRINT_CHARS {
            let mut cut = MAX_FINGERPRINT_CHARS;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push_str(" …");
            break;
        }
    }
    Some(out)
}

fn plain_identifier(name: &str) -> bool {
    name.len() <= 63 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Tokens whose text comes from the client (literals, stray characters,
/// custom operators) rather than from the grammar.
fn carries_text(token: &Token) -> bool {
    matches!(
        token,
        Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::CustomBinaryOperator(_)
    )
}

/// A table or column name of the catalog, or an allowed function.
fn is_known_name(catalog: &Catalog, dialect: Dialect, word: &str) -> bool {
    let rule = catalog.name_rule();
    catalog
        .tables()
        .any(|t| rule.eq(&t.name, word) || t.columns.iter().any(|c| rule.eq(&c.name, word)))
        || super::function_allowed(word, dialect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnInfo, TableInfo};

    fn catalog() -> Catalog {
        let column = |name: &str| ColumnInfo {
            name: name.into(),
            decl_type: "TEXT".into(),
            primary_key: name == "id",
        };
        Catalog::new([TableInfo {
            name: "customers".into(),
            columns: vec![column("id"), column("email"), column("full_name")],
        }])
    }

    fn fp(sql: &str, names: Names) -> String {
        fingerprint(sql, Dialect::Sqlite, names, &catalog()).unwrap()
    }

    #[test]
    fn literals_become_placeholders() {
        assert_eq!(
            fp(
                "SELECT id, email\n FROM customers WHERE email = 'ann@example.com' AND id > 42 LIMIT 5",
                Names::Resolved
            ),
            "SELECT id, email FROM customers WHERE email = ? AND id > ? LIMIT ?"
        );
        for sql in [
            "SELECT * FROM customers WHERE email = X'616e6e'",
            "SELECT * FROM customers WHERE email = \"ann@example.com\"",
            "SELECT * FROM customers /* ann@example.com */ WHERE id = 1",
            "SELECT * FROM customers WHERE email = 'ann@example.com' -- ann@example.com",
        ] {
            for names in [Names::Resolved, Names::Unchecked] {
                let f = fp(sql, names);
                assert!(!f.contains("ann"), "{sql} ({names:?}) → {f}");
                assert!(!f.contains("616e6e"), "{sql} → {f}");
            }
        }
    }

    #[test]
    fn postgres_dollar_quotes_and_escapes_are_literals() {
        let sql = "SELECT id FROM customers WHERE email = $$ann@example.com$$ OR email = E'ann\\x40example.com' OR email = U&'ann'";
        let f = fingerprint(sql, Dialect::Postgres, Names::Resolved, &catalog()).unwrap();
        assert!(!f.contains("ann"), "{f}");
        assert!(
            f.starts_with("SELECT id FROM customers WHERE email = ?"),
            "{f}"
        );
    }

    #[test]
    fn unchecked_statements_keep_only_known_words() {
        // An unquoted email is a syntax error whose words are data.
        let f = fp(
            "SELECT full_name FROM customers c WHERE email = ann@example.com",
            Names::Unchecked,
        );
        assert_eq!(f, "SELECT full_name FROM customers ? WHERE email = ?@?.?");
        // Once names are resolved, aliases are names and kept.
        let f = fp(
            "SELECT c.full_name FROM customers c WHERE lower(c.email) = 'x'",
            Names::Resolved,
        );
        assert_eq!(
            f,
            "SELECT c.full_name FROM customers c WHERE lower(c.email) = ?"
        );
    }

    #[test]
    fn long_statements_are_cut() {
        let list: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        let sql = format!("SELECT id FROM customers WHERE id IN ({})", list.join(", "));
        let f = fp(&sql, Names::Resolved);
        assert!(f.len() <= MAX_FINGERPRINT_CHARS + 4, "{}", f.len());
        assert!(f.ends_with(" …"));
        assert!(!f.contains('1'));
    }

    #[test]
    fn untokenizable_text_keeps_nothing() {
        assert_eq!(
            fingerprint(
                "SELECT 'ann@example.com",
                Dialect::Sqlite,
                Names::Unchecked,
                &catalog()
            ),
            None
        );
    }
}
