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

/// All governed tables. Lookups follow the backend's identifier rules
/// (SQLite: ASCII case-insensitive, quoted or not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    tables: BTreeMap<String, TableInfo>,
}

/// SQLite compares identifiers ASCII-case-insensitively.
fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl Catalog {
    /// Builds a catalog; table names are canonicalized (lower case).
    pub fn new(tables: impl IntoIterator<Item = TableInfo>) -> Catalog {
        Catalog {
            tables: tables
                .into_iter()
                .map(|mut t| {
                    t.name = fold(&t.name);
                    (t.name.clone(), t)
                })
                .collect(),
        }
    }

    /// Looks a table up the way the backend would resolve the identifier.
    pub fn table(&self, name: &str) -> Option<&TableInfo> {
        self.tables.get(&fold(name))
    }

    pub fn tables(&self) -> impl Iterator<Item = &TableInfo> {
        self.tables.values()
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
