//! The audit query language: parsing and translation to tantivy queries.
//!
//! The syntax is documented in [`crate::index`]. A small hand-written parser
//! rather than tantivy's `QueryParser`, because identifiers here are full of
//! characters that parser treats specially (`marketing-service`,
//! `customer:42`), because a query made only of `NOT` terms must still mean
//! "everything except", and because errors must tell an auditor what was
//! wrong in their terms. Every error is a message for
//! [`IndexError::BadQuery`](crate::index::IndexError::BadQuery); nothing here
//! panics on input.

use std::ops::Bound;

use tantivy::query::{
    AllQuery, BooleanQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Schema};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::Term;

use crate::index::{normalize, FieldKind, FIELDS};

/// Longest accepted query, in bytes: anything longer is a mistake, not a
/// question.
const MAX_QUERY_LEN: usize = 8 * 1024;

/// Deepest accepted nesting of parentheses and `NOT`s, so a hostile query
/// cannot overflow the stack of the recursive parser.
const MAX_DEPTH: usize = 64;

/// The default field: bare words search it.
const DEFAULT_FIELD: &str = "fingerprint";

/// Parses `input` and builds the tantivy query over `schema`, using
/// `analyzer` (the fingerprint tokenizer) for full-text terms.
pub(crate) fn compile(
    input: &str,
    schema: &Schema,
    analyzer: TextAnalyzer,
) -> Result<Box<dyn Query>, String> {
    if input.len() > MAX_QUERY_LEN {
        return Err(format!(
            "the query is {} bytes long; the limit is {MAX_QUERY_LEN}",
            input.len()
        ));
    }
    let tokens = lex(input)?;
    let ast = Parser { tokens, pos: 0 }.parse()?;
    Builder { schema, analyzer }.build(&ast)
}

/// A field value as written.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// A word or quoted string.
    Text { text: String, quoted: bool },
    /// `[lo TO hi]`, `{lo TO hi}` or a comparison, for numeric fields.
    Range {
        lo: Bound<String>,
        hi: Bound<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Term {
        field: Option<String>,
        value: Value,
        /// The term as written, for error messages.
        source: String,
    },
}

/// The parsed query.
#[derive(Debug, Clone, PartialEq)]
enum Ast {
    /// Every event (empty query or `*`).
    All,
    Term {
        field: Option<String>,
        value: Value,
        source: String,
    },
    And(Vec<Ast>),
    Or(Vec<Ast>),
    Not(Box<Ast>),
}

/// Splits the query into tokens.
fn lex(input: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            '-' if chars
                .get(i + 1)
                .is_some_and(|n| !n.is_whitespace() && *n != ')') =>
            {
                // `-term` is `NOT term` (a `-` inside a value is just a
                // character: values are read whole below).
                tokens.push(Token::Not);
                i += 1;
            }
            '"' => {
                let start = i;
                let (text, next) = read_quoted(&chars, i)?;
                i = next;
                tokens.push(Token::Term {
                    field: None,
                    value: Value::Text { text, quoted: true },
                    source: chars[start..i].iter().collect(),
                });
            }
            _ => {
                let start = i;
                // A field name is letters, digits and `_`, right before `:`.
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let is_field =
                    j > i && chars[i].is_ascii_alphabetic() && chars.get(j) == Some(&':');
                if is_field {
                    let field: String = chars[i..j].iter().collect();
                    let (value, next) = read_value(&chars, j + 1, &field)?;
                    i = next;
                    tokens.push(Token::Term {
                        field: Some(field),
                        value,
                        source: chars[start..i].iter().collect(),
                    });
                } else {
                    let (word, next) = read_word(&chars, i);
                    i = next;
                    tokens.push(match word.as_str() {
                        "AND" => Token::And,
                        "OR" => Token::Or,
                        "NOT" => Token::Not,
                        _ => Token::Term {
                            field: None,
                            source: word.clone(),
                            value: Value::Text {
                                text: word,
                                quoted: false,
                            },
                        },
                    });
                }
            }
        }
    }
    Ok(tokens)
}

/// Reads an unquoted word from `i`: up to whitespace, a parenthesis or a
/// quote. Returns the word and the index after it.
fn read_word(chars: &[char], mut i: usize) -> (String, usize) {
    let start = i;
    while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')' | '"') {
        i += 1;
    }
    (chars[start..i].iter().collect(), i)
}

/// Reads a quoted string starting at the `"` at `i`; `\"` and `\\` escape.
fn read_quoted(chars: &[char], i: usize) -> Result<(String, usize), String> {
    let mut text = String::new();
    let mut j = i + 1;
    while j < chars.len() {
        match chars[j] {
            '"' => return Ok((text, j + 1)),
            '\\' if j + 1 < chars.len() => {
                text.push(chars[j + 1]);
                j += 2;
            }
            c => {
                text.push(c);
                j += 1;
            }
        }
    }
    let rest: String = chars[i..].iter().collect();
    Err(format!("the quote in {rest} is never closed"))
}

/// Reads the value of `field:` starting at `i`.
fn read_value(chars: &[char], i: usize, field: &str) -> Result<(Value, usize), String> {
    match chars.get(i) {
        None => Err(format!("`{field}:` needs a value after the colon")),
        Some(c) if c.is_whitespace() || *c == ')' || *c == '(' => Err(format!(
            "`{field}:` needs a value right after the colon (quote values that contain spaces or parentheses)"
        )),
        Some('"') => {
            let (text, next) = read_quoted(chars, i)?;
            Ok((Value::Text { text, quoted: true }, next))
        }
        Some(open @ ('[' | '{')) => {
            let Some(len) = chars[i + 1..].iter().position(|c| matches!(c, ']' | '}')) else {
                return Err(format!(
                    "the range after `{field}:` is never closed; write it like {field}:[100 TO 200]"
                ));
            };
            let close = i + 1 + len;
            let inside: String = chars[i + 1..close].iter().collect();
            let parts: Vec<&str> = inside.split_whitespace().collect();
            let [lo, to, hi] = parts[..] else {
                return Err(format!(
                    "`{field}:{open}{inside}{}` is not a range; write it like {field}:[100 TO 200], with [ ] inclusive, {{ }} exclusive and * for an open end",
                    chars[close]
                ));
            };
            if !to.eq_ignore_ascii_case("TO") {
                return Err(format!(
                    "a range needs TO between its ends, as in {field}:[100 TO 200]; found `{to}`"
                ));
            }
            let bound = |v: &str, inclusive: bool| match v {
                "*" => Bound::Unbounded,
                v if inclusive => Bound::Included(v.to_string()),
                v => Bound::Excluded(v.to_string()),
            };
            Ok((
                Value::Range {
                    lo: bound(lo, *open == '['),
                    hi: bound(hi, chars[close] == ']'),
                },
                close + 1,
            ))
        }
        Some('>' | '<') => {
            let (op, j) = if chars.get(i + 1) == Some(&'=') {
                (&chars[i..i + 2], i + 2)
            } else {
                (&chars[i..i + 1], i + 1)
            };
            let op: String = op.iter().collect();
            let (word, next) = read_word(chars, j);
            if word.is_empty() {
                return Err(format!("`{field}:{op}` needs a number after it"));
            }
            let value = match op.as_str() {
                ">" => (Bound::Excluded(word), Bound::Unbounded),
                ">=" => (Bound::Included(word), Bound::Unbounded),
                "<" => (Bound::Unbounded, Bound::Excluded(word)),
                _ => (Bound::Unbounded, Bound::Included(word)),
            };
            Ok((
                Value::Range {
                    lo: value.0,
                    hi: value.1,
                },
                next,
            ))
        }
        Some(_) => {
            let (text, next) = read_word(chars, i);
            Ok((
                Value::Text {
                    text,
                    quoted: false,
                },
                next,
            ))
        }
    }
}

/// Recursive-descent parser: `OR` of `AND`s of unary terms.
struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn parse(mut self) -> Result<Ast, String> {
        if self.tokens.is_empty() {
            return Ok(Ast::All);
        }
        let ast = self.or(0)?;
        match self.tokens.get(self.pos) {
            None => Ok(ast),
            Some(Token::RParen) => Err("there is a `)` without a matching `(`".into()),
            Some(other) => Err(format!("unexpected {}", describe(other))),
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or(&mut self, depth: usize) -> Result<Ast, String> {
        let mut parts = vec![self.and(depth)?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            if self.peek().is_none() {
                return Err("`OR` at the end needs a term after it".into());
            }
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Ast::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Ast, String> {
        let mut parts = vec![self.unary(depth)?];
        loop {
            match self.peek() {
                Some(Token::And) => {
                    self.pos += 1;
                    if self.peek().is_none() {
                        return Err("`AND` at the end needs a term after it".into());
                    }
                    parts.push(self.unary(depth)?);
                }
                // Terms side by side are ANDed.
                Some(Token::Term { .. } | Token::Not | Token::LParen) => {
                    parts.push(self.unary(depth)?);
                }
                _ => break,
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Ast::And(parts)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Ast, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "the query nests parentheses or NOTs more than {MAX_DEPTH} deep"
            ));
        }
        let Some(token) = self.tokens.get(self.pos).cloned() else {
            return Err("the query ends where a term was expected".into());
        };
        self.pos += 1;
        match token {
            Token::Not => {
                if self.peek().is_none() {
                    return Err("`NOT` (or `-`) needs a term after it".into());
                }
                Ok(Ast::Not(Box::new(self.unary(depth + 1)?)))
            }
            Token::LParen => {
                if self.peek() == Some(&Token::RParen) {
                    return Err("`()` is empty; put terms inside the parentheses".into());
                }
                let inner = self.or(depth + 1)?;
                if self.peek() != Some(&Token::RParen) {
                    return Err("a `(` is never closed with `)`".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            Token::Term {
                field: None,
                value:
                    Value::Text {
                        ref text,
                        quoted: false,
                    },
                ..
            } if text == "*" => Ok(Ast::All),
            Token::Term {
                field,
                value,
                source,
            } => Ok(Ast::Term {
                field,
                value,
                source,
            }),
            Token::And | Token::Or => {
                Err(format!("{} needs a term on each side", describe(&token)))
            }
            Token::RParen => Err("there is a `)` where a term was expected".into()),
        }
    }
}

/// How a token is named in error messages.
fn describe(token: &Token) -> String {
    match token {
        Token::LParen => "`(`".into(),
        Token::RParen => "`)`".into(),
        Token::And => "`AND`".into(),
        Token::Or => "`OR`".into(),
        Token::Not => "`NOT`".into(),
        Token::Term { source, .. } => format!("`{source}`"),
    }
}

/// Translates the syntax tree into tantivy queries.
struct Builder<'a> {
    schema: &'a Schema,
    analyzer: TextAnalyzer,
}

impl Builder<'_> {
    fn build(&mut self, ast: &Ast) -> Result<Box<dyn Query>, String> {
        match ast {
            Ast::All => Ok(Box::new(AllQuery)),
            Ast::Term {
                field,
                value,
                source,
            } => self.term(field.as_deref(), value, source),
            Ast::And(parts) => {
                let mut clauses = Vec::with_capacity(parts.len() + 1);
                let mut positive = false;
                for part in parts {
                    match part {
                        Ast::Not(inner) => clauses.push((Occur::MustNot, self.build(inner)?)),
                        other => {
                            positive = true;
                            clauses.push((Occur::Must, self.build(other)?));
                        }
                    }
                }
                // A conjunction of exclusions means "everything except".
                if !positive {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            Ast::Or(parts) => {
                let clauses = parts
                    .iter()
                    .map(|p| Ok((Occur::Should, self.build(p)?)))
                    .collect::<Result<Vec<_>, String>>()?;
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            Ast::Not(inner) => Ok(Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery)),
                (Occur::MustNot, self.build(inner)?),
            ]))),
        }
    }

    fn term(
        &mut self,
        field: Option<&str>,
        value: &Value,
        source: &str,
    ) -> Result<Box<dyn Query>, String> {
        let name = field.unwrap_or(DEFAULT_FIELD).to_ascii_lowercase();
        let Some(spec) = FIELDS.iter().find(|s| s.name == name) else {
            let known: Vec<&str> = FIELDS.iter().map(|s| s.name).collect();
            return Err(format!(
                "unknown field `{name}` in `{source}`; the fields are: {}",
                known.join(", ")
            ));
        };
        let field = self
            .schema
            .get_field(spec.name)
            .map_err(|e| format!("field `{name}` is missing from the index: {e}"))?;
        match spec.kind {
            FieldKind::Keyword | FieldKind::Subject => keyword(field, spec.kind, value, source),
            FieldKind::Text => self.text(field, value, source),
            FieldKind::U64 => {
                let indexed = self.schema.get_field_entry(field).is_indexed();
                numeric(value, source, indexed, |v| {
                    v.parse::<u64>()
                        .ok()
                        .map(|n| Term::from_field_u64(field, n))
                })
            }
            FieldKind::I64 => {
                let indexed = self.schema.get_field_entry(field).is_indexed();
                numeric(value, source, indexed, |v| {
                    v.parse::<i64>()
                        .ok()
                        .map(|n| Term::from_field_i64(field, n))
                })
            }
        }
    }

    /// A full-text term: one word is a term query, several a phrase, a
    /// trailing `*` makes the last word a prefix.
    fn text(
        &mut self,
        field: Field,
        value: &Value,
        source: &str,
    ) -> Result<Box<dyn Query>, String> {
        let (text, quoted) = match value {
            Value::Text { text, quoted } => (text.as_str(), *quoted),
            Value::Range { .. } => {
                return Err(format!(
                    "`{source}`: ranges only work on the numeric fields seq, rows and time"
                ))
            }
        };
        let prefix = !quoted && text.ends_with('*');
        let words_text = if prefix {
            text.trim_end_matches('*')
        } else {
            text
        };
        if prefix && words_text.is_empty() {
            return Ok(any_value(field));
        }
        let mut words: Vec<(usize, Term)> = Vec::new();
        let mut stream = self.analyzer.token_stream(words_text);
        stream.process(&mut |token| {
            words.push((token.position, Term::from_field_text(field, &token.text)));
        });
        match words.len() {
            0 => Err(format!(
                "`{source}` has no word to search for (the fingerprint is searched by words of letters and digits)"
            )),
            _ if prefix => {
                let mut query = PhrasePrefixQuery::new_with_offset(words);
                query.set_max_expansions(u32::MAX);
                Ok(Box::new(query))
            }
            1 => {
                let (_, term) = words.remove(0);
                Ok(Box::new(TermQuery::new(term, IndexRecordOption::Basic)))
            }
            _ => Ok(Box::new(PhraseQuery::new_with_offset(words))),
        }
    }
}

/// A keyword or subject term: exact (normalized) value, or a prefix with a
/// trailing unquoted `*`.
fn keyword(
    field: Field,
    kind: FieldKind,
    value: &Value,
    source: &str,
) -> Result<Box<dyn Query>, String> {
    match value {
        Value::Text {
            text,
            quoted: false,
        } if text.ends_with('*') => {
            let prefix = text.trim_end_matches('*');
            if prefix.is_empty() {
                return Ok(any_value(field));
            }
            let term = Term::from_field_text(field, &normalize(kind, prefix));
            let mut query = PhrasePrefixQuery::new(vec![term]);
            // A prefix may legitimately expand to many values (every
            // `customer:` subject); the default cap of 50 would silently
            // drop matches.
            query.set_max_expansions(u32::MAX);
            Ok(Box::new(query))
        }
        Value::Text { text, .. } => {
            let term = Term::from_field_text(field, &normalize(kind, text));
            Ok(Box::new(TermQuery::new(term, IndexRecordOption::Basic)))
        }
        Value::Range { .. } => Err(format!(
            "`{source}`: ranges only work on the numeric fields seq, rows and time"
        )),
    }
}

/// Events with any value in a text field: a prefix query on the empty
/// prefix enumerates all of the field's terms.
fn any_value(field: Field) -> Box<dyn Query> {
    let mut query = PhrasePrefixQuery::new(vec![Term::from_field_text(field, "")]);
    query.set_max_expansions(u32::MAX);
    Box::new(query)
}

/// A numeric term, range or comparison. `parse` turns a written number into
/// a term, or `None` when it is not a valid number for the field.
fn numeric(
    value: &Value,
    source: &str,
    indexed: bool,
    parse: impl Fn(&str) -> Option<Term>,
) -> Result<Box<dyn Query>, String> {
    let number = |v: &str| {
        parse(v).ok_or_else(|| {
            format!("`{source}`: `{v}` is not a whole number (write ranges as [100 TO 200])")
        })
    };
    match value {
        Value::Text {
            text,
            quoted: false,
        } if text == "*" => Ok(Box::new(AllQuery)),
        Value::Text { text, .. } => {
            let term = number(text)?;
            if indexed {
                Ok(Box::new(TermQuery::new(term, IndexRecordOption::Basic)))
            } else {
                // Fast-field-only columns answer equality as a one-value
                // range.
                Ok(Box::new(RangeQuery::new(
                    Bound::Included(term.clone()),
                    Bound::Included(term),
                )))
            }
        }
        Value::Range { lo, hi } => {
            let map = |b: &Bound<String>| -> Result<Bound<Term>, String> {
                Ok(match b {
                    Bound::Included(v) => Bound::Included(number(v)?),
                    Bound::Excluded(v) => Bound::Excluded(number(v)?),
                    Bound::Unbounded => Bound::Unbounded,
                })
            };
            let (lo, hi) = (map(lo)?, map(hi)?);
            // tantivy needs at least one bound to know the field.
            if matches!((&lo, &hi), (Bound::Unbounded, Bound::Unbounded)) {
                return Ok(Box::new(AllQuery));
            }
            Ok(Box::new(RangeQuery::new(lo, hi)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> Result<Ast, String> {
        Parser {
            tokens: lex(input)?,
            pos: 0,
        }
        .parse()
    }

    fn term(field: &str, text: &str) -> Ast {
        Ast::Term {
            field: Some(field.into()),
            value: Value::Text {
                text: text.into(),
                quoted: false,
            },
            source: format!("{field}:{text}"),
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let ast = parse("a:1 OR b:2 AND c:3").unwrap();
        assert_eq!(
            ast,
            Ast::Or(vec![
                term("a", "1"),
                Ast::And(vec![term("b", "2"), term("c", "3")])
            ])
        );
    }

    #[test]
    fn values_keep_hyphens_dots_and_colons() {
        assert_eq!(
            parse("principal:marketing-service").unwrap(),
            term("principal", "marketing-service")
        );
        assert_eq!(
            parse("subject:customer:42").unwrap(),
            term("subject", "customer:42")
        );
        assert_eq!(
            parse("column:customers.email").unwrap(),
            term("column", "customers.email")
        );
    }

    #[test]
    fn minus_is_not() {
        assert_eq!(
            parse("-outcome:allowed").unwrap(),
            Ast::Not(Box::new(term("outcome", "allowed")))
        );
    }

    #[test]
    fn ranges_and_comparisons() {
        let Ast::Term { value, .. } = parse("rows:[100 TO *}").unwrap() else {
            panic!()
        };
        assert_eq!(
            value,
            Value::Range {
                lo: Bound::Included("100".into()),
                hi: Bound::Unbounded
            }
        );
        let Ast::Term { value, .. } = parse("rows:<5").unwrap() else {
            panic!()
        };
        assert_eq!(
            value,
            Value::Range {
                lo: Bound::Unbounded,
                hi: Bound::Excluded("5".into())
            }
        );
    }

    #[test]
    fn errors_do_not_panic() {
        for bad in [
            "(",
            ")",
            "a:",
            "AND",
            "x AND",
            "NOT",
            "()",
            "\"open",
            "rows:[1 TO",
            "rows:[1 2]",
            "rows:>",
            "a:1 OR",
            "((((",
            "))",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        let deep = "(".repeat(1000) + "x" + &")".repeat(1000);
        assert!(parse(&deep).is_err());
    }
}
