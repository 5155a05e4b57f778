//! The governed database's tables and columns, as read from its own catalog,
//! joined with the configured column classification.

use std::collections::BTreeMap;

use policies::{Category, ColumnSpec, TableSpec};

use crate::config::{Config, ConfigError};

/// A column as the database declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    /// The declared type, as written in the DDL (may be empty in SQLite).
    pub decl_type: String,
    pub primary_key: bool,
}

/// A table as the database declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// The canonical name: what Cedar policies call `Privet::Table::"name"`.
    pub name: String,
    pub columns: Vec<ColumnInfo>,
}

/// How a database compares identifiers once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameRule {
    /// SQLite: ASCII case-insensitive, quoted or not.
    #[default]
    CaseInsensitive,
    /// PostgreSQL: exact, after unquoted names were folded to lower case
    /// (the analyzer folds them while tokenizing).
    Exact,
}

impl NameRule {
    /// Whether two (already folded) identifiers name the same thing.
    pub fn eq(self, a: &str, b: &str) -> bool {
        match self {
            NameRule::CaseInsensitive => a.eq_ignore_ascii_case(b),
            NameRule::Exact => a == b,
        }
    }

    fn key(self, name: &str) -> String {
        match self {
            NameRule::CaseInsensitive => name.to_ascii_lowercase(),
            NameRule::Exact => name.to_owned(),
        }
    }
}

/// A column whose values name data subjects: an identifier with a pseudonym
/// domain (`orders.customer_id` in domain `customer`). Audit events record
/// the subjects of returned rows by these keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKey {
    pub column: String,
    pub domain: String,
}

/// A column stored as vault ciphertext (classified `encrypted = true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedColumn {
    pub column: String,
    /// The column beside it holding its blind index (`<column>_bidx`), if
    /// the table has one: equality on the column is rewritten to it.
    pub blind_index: Option<String>,
    /// The primary key columns: ciphertexts are bound to their row by them.
    pub row_key: Vec<String>,
}

/// All governed tables, in one schema. Lookups follow the backend's
/// identifier rules ([`NameRule`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    tables: BTreeMap<String, TableInfo>,
    /// The schema the tables live in (`main` in SQLite): rewritten queries
    /// name base tables `schema."table"`.
    schema: String,
    rule: NameRule,
    /// Subject keys by canonical table name (from the classification).
    subject_keys: BTreeMap<String, Vec<SubjectKey>>,
    /// Encrypted columns by canonical table name (from the classification).
    encrypted: BTreeMap<String, Vec<EncryptedColumn>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new([])
    }
}

/// A database whose names Privet cannot govern unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CatalogError(pub String);

impl Catalog {
    /// A SQLite catalog (schema `main`); table names are canonicalized to
    /// lower case.
    pub fn new(tables: impl IntoIterator<Item = TableInfo>) -> Catalog {
        let rule = NameRule::CaseInsensitive;
        Catalog {
            tables: tables
                .into_iter()
                .map(|mut t| {
                    t.name = rule.key(&t.name);
                    (t.name.clone(), t)
                })
                .collect(),
            schema: "main".to_owned(),
            rule,
            subject_keys: BTreeMap::new(),
            encrypted: BTreeMap::new(),
        }
    }

    /// A PostgreSQL catalog of `schema`: names are exact. Tables or columns
    /// whose names differ only in case are refused: the classification and
    /// the policies name tables case-insensitively, and one name must not
    /// stand for two relations.
    pub fn postgres(
        schema: &str,
        tables: impl IntoIterator<Item = TableInfo>,
    ) -> Result<Catalog, CatalogError> {
        let mut folded = BTreeMap::new();
        let mut by_name = BTreeMap::new();
        for table in tables {
            if let Some(other) = folded.insert(table.name.to_ascii_lowercase(), table.name.clone())
            {
                return Err(CatalogError(format!(
                    "schema `{schema}` has tables `{other}` and `{}` whose names differ only in case; \
                     Privet cannot govern them unambiguously (rename one, or govern another schema)",
                    table.name
                )));
            }
            let mut columns = BTreeMap::new();
            for c in &table.columns {
                if let Some(other) = columns.insert(c.name.to_ascii_lowercase(), &c.name) {
                    return Err(CatalogError(format!(
                        "table `{}` has columns `{other}` and `{}` whose names differ only in case; \
                         Privet cannot govern them unambiguously",
                        table.name, c.name
                    )));
                }
            }
            by_name.insert(table.name.clone(), table);
        }
        Ok(Catalog {
            tables: by_name,
            schema: schema.to_owned(),
            rule: NameRule::Exact,
            subject_keys: BTreeMap::new(),
            encrypted: BTreeMap::new(),
        })
    }

    /// The schema that holds the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// How identifiers compare in this database.
    pub fn name_rule(&self) -> NameRule {
        self.rule
    }

    /// Looks a table up the way the backend would resolve the identifier.
    pub fn table(&self, name: &str) -> Option<&TableInfo> {
        self.tables.get(&self.rule.key(name))
    }

    pub fn tables(&self) -> impl Iterator<Item = &TableInfo> {
        self.tables.values()
    }

    /// The subject keys of a table (canonical name): empty when its rows
    /// name no data subject.
    pub fn subject_keys(&self, table: &str) -> &[SubjectKey] {
        self.subject_keys.get(table).map_or(&[], Vec::as_slice)
    }

    /// The encrypted columns of a table (canonical name).
    pub fn encrypted(&self, table: &str) -> &[EncryptedColumn] {
        self.encrypted.get(table).map_or(&[], Vec::as_slice)
    }

    /// The encrypted column `table.column`, if it is one.
    pub fn encrypted_column(&self, table: &str, column: &str) -> Option<&EncryptedColumn> {
        self.encrypted(table)
            .iter()
            .find(|e| self.rule.eq(&e.column, column))
    }

    /// The encrypted column whose blind index `table.column` is, if any.
    pub fn blind_index_of(&self, table: &str, column: &str) -> Option<&EncryptedColumn> {
        self.encrypted(table).iter().find(|e| {
            e.blind_index
                .as_deref()
                .is_some_and(|b| self.rule.eq(b, column))
        })
    }

    /// Takes the encrypted columns from the classification. Each needs its
    /// table's primary key (the row binding of its ciphertexts): a table
    /// without one is a config error. Call after [`Catalog::classify`].
    pub fn set_encrypted(&mut self, config: &Config) -> Result<(), ConfigError> {
        let mut encrypted: BTreeMap<String, Vec<EncryptedColumn>> = BTreeMap::new();
        for ((table, column), class) in &config.classification {
            if !class.encrypted {
                continue;
            }
            let Some(info) = self.table(table) else {
                continue;
            };
            let Some(col) = info
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(column))
            else {
                continue;
            };
            let row_key: Vec<String> = info
                .columns
                .iter()
                .filter(|c| c.primary_key)
                .map(|c| c.name.clone())
                .collect();
            if row_key.is_empty() {
                return Err(config.classification_error(
                    table,
                    column,
                    format!(
                        "table `{}` has no primary key, which an encrypted column needs: each ciphertext is bound to its row's key",
                        info.name
                    ),
                ));
            }
            let bidx = format!("{}_bidx", col.name);
            let blind_index = info
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(&bidx))
                .map(|c| c.name.clone());
            encrypted
                .entry(info.name.clone())
                .or_default()
                .push(EncryptedColumn {
                    column: col.name.clone(),
                    blind_index,
                    row_key,
                });
        }
        self.encrypted = encrypted;
        Ok(())
    }

    /// Takes the subject keys from the classification: every identifier
    /// column with a pseudonym domain. Call after [`Catalog::classify`]
    /// accepted the config.
    pub fn set_subject_keys(&mut self, config: &Config) {
        let mut keys: BTreeMap<String, Vec<SubjectKey>> = BTreeMap::new();
        for ((table, column), class) in &config.classification {
            let (Category::Identifier, Some(domain)) = (class.category, &class.domain) else {
                continue;
            };
            let Some(info) = self.table(table) else {
                continue;
            };
            let Some(column) = info
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(column))
            else {
                continue;
            };
            keys.entry(info.name.clone()).or_default().push(SubjectKey {
                column: column.name.clone(),
                domain: domain.clone(),
            });
        }
        self.subject_keys = keys;
    }

    /// The tables with their classification, for the policy engine. A
    /// classified column the database does not have is a config error: it is
    /// usually a typo that would leave real PII unclassified.
    pub fn classify(&self, config: &Config) -> Result<Vec<TableSpec>, ConfigError> {
        for (table, column) in config.classification.keys() {
            let exists = self.table(table).is_some_and(|t| {
                t.columns
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(column))
            });
            if !exists {
                let what = if self.table(table).is_some() {
                    format!("table `{table}` has no column `{column}`")
                } else {
                    format!("the database has no table `{table}`")
                };
                return Err(config.classification_error(table, column, what));
            }
        }
        Ok(self
            .tables()
            .map(|t| TableSpec {
                name: t.name.clone(),
                columns: t
                    .columns
                    .iter()
                    .map(|c| {
                        let class = config.classification.iter().find(|((tn, cn), _)| {
                            tn.eq_ignore_ascii_case(&t.name) && cn.eq_ignore_ascii_case(&c.name)
                        });
                        ColumnSpec {
                            name: c.name.clone(),
                            category: class.map_or(Category::None, |(_, cl)| cl.category),
                            encrypted: class.is_some_and(|(_, cl)| cl.encrypted),
                        }
                    })
                    .collect(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn catalog() -> Catalog {
        let col = |name: &str| ColumnInfo {
            name: name.to_string(),
            decl_type: "TEXT".to_string(),
            primary_key: false,
        };
        Catalog::new([TableInfo {
            name: "Customers".to_string(),
            columns: vec![col("id"), col("Email")],
        }])
    }

    #[test]
    fn lookups_are_case_insensitive_and_canonical_names_lower_case() {
        let c = catalog();
        assert_eq!(
            c.table("CUSTOMERS").map(|t| t.name.as_str()),
            Some("customers")
        );
        assert!(c.table("customer").is_none());
    }

    #[test]
    fn classification_applies_and_unknown_columns_are_config_errors() {
        let c = catalog();
        let config = Config::parse(
            Path::new("p.toml"),
            "[classification]\n\"customers.email\" = { category = \"email\" }\n",
        )
        .unwrap();
        let specs = c.classify(&config).unwrap();
        let email = &specs[0].columns[1];
        assert_eq!(
            (email.name.as_str(), email.category),
            ("Email", Category::Email)
        );
        assert_eq!(specs[0].columns[0].category, Category::None);

        let config = Config::parse(
            Path::new("p.toml"),
            "[classification]\n\n\"customers.emial\" = { category = \"email\" }\n",
        )
        .unwrap();
        let e = c.classify(&config).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("has no column `emial`"), "{e}");
    }
}
