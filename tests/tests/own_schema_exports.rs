//! Exports over a database that is not the demo store (issue 7): an ML
//! team with its own census-like `people` table and a `ratings` table
//! writes a config, a Cedar policy and two dataset specs, and gets the same
//! guarantees: k-anonymity (checked here by counting), masks, no raw
//! names or e-mails in the files, pseudonyms that do not join across
//! datasets, and refusal of a dataset the policy does not name.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use e2e::{path_str, privet};

const KEY_SHA256_OF_ML: &str = "a1c5c0a0a6e9a5fb7bde8f0cba1b1a5f4a4c0d5f4f2b8e1f7c7e9a5b0c3d2e1f";

/// A deterministic little population: 1,500 people, 15,000 ratings.
fn create_store(path: &Path) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(path).expect("store");
    db.execute_batch(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, full_name TEXT NOT NULL, email TEXT NOT NULL,
                              birth_date TEXT NOT NULL, sex TEXT NOT NULL, zip TEXT NOT NULL,
                              income INTEGER NOT NULL);
         CREATE TABLE ratings (user_id INTEGER NOT NULL REFERENCES people(id), item_id INTEGER NOT NULL,
                               rating INTEGER NOT NULL, ts TEXT NOT NULL);",
    )
    .expect("schema");
    // A fixed LCG: the same rows on every run.
    let mut state: u64 = 0x5eed;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let mut secrets = Vec::new();
    let tx = db.unchecked_transaction().expect("tx");
    for id in 1..=1500u64 {
        let name = format!("Quinta Verloren{id}");
        let email = format!("quinta.{id}@own-mail.example");
        tx.execute(
            "INSERT INTO people VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                id,
                name,
                email,
                format!(
                    "{}-{:02}-{:02}",
                    1945 + next(60),
                    1 + next(12),
                    1 + next(28)
                ),
                if next(2) == 0 { "F" } else { "M" },
                format!("{}{:03}", 10 + next(8), next(1000)),
                10_000 + next(190_000),
            ],
        )
        .expect("person");
        secrets.push((name, email));
    }
    for _ in 0..15_000 {
        tx.execute(
            "INSERT INTO ratings VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                1 + next(1500),
                1 + next(300),
                1 + next(5),
                format!(
                    "2025-{:02}-{:02}T{:02}:{:02}:00Z",
                    1 + next(12),
                    1 + next(28),
                    next(24),
                    next(60)
                ),
            ],
        )
        .expect("rating");
    }
    tx.commit().expect("commit");
    secrets
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn export(config: &Path, spec: &Path, out: &Path) -> std::process::Output {
    privet(&[
        "export",
        "--config",
        path_str(config),
        "--spec",
        path_str(spec),
        "--out",
        path_str(out),
        "--as",
        "ml",
    ])
}

fn parquet_rows(path: &Path) -> Vec<HashMap<String, String>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(path).expect("parquet file");
    let reader = SerializedFileReader::new(file).expect("a Parquet file");
    reader
        .get_row_iter(None)
        .expect("rows")
        .map(|row| {
            row.expect("row")
                .get_column_iter()
                .map(|(name, field)| (name.clone(), field.to_string().trim_matches('"').to_owned()))
                .collect()
        })
        .collect()
}

#[test]
fn an_ml_teams_own_tables_export_with_the_same_guarantees() {
    let temp = tempfile::tempdir().expect("temp dir");
    let root = temp.path();
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let secrets = create_store(&data.join("own.sqlite3"));
    for dir in ["policies", "datasets"] {
        std::fs::create_dir_all(root.join(dir)).expect("dir");
    }
    let config = root.join("privet.toml");
    write(
        &config,
        &format!(
            r#"listen = "127.0.0.1:0"
data_dir = "data"
backend = "sqlite:own.sqlite3"
policies = "policies"
datasets = "datasets"
master_key_file = "master.key"

[[principals]]
name = "ml"
kind = "user"
purposes = ["analytics"]
api_key_sha256 = "{KEY_SHA256_OF_ML}"

[classification]
"people.id" = {{ category = "identifier", domain = "person" }}
"people.full_name" = {{ category = "name" }}
"people.email" = {{ category = "email" }}
"people.birth_date" = {{ category = "dob" }}
"people.zip" = {{ category = "address" }}
"ratings.user_id" = {{ category = "identifier", domain = "person" }}
"#
        ),
    );
    write(
        &root.join("policies/ml.cedar"),
        r#"@id("ml-export")
permit (principal == Privet::User::"ml", action == Privet::Action::"export", resource)
when { resource in [Privet::Dataset::"census", Privet::Dataset::"ratings"] && context.purpose == "analytics" };

@id("ml-census-source")
permit (principal == Privet::User::"ml", action == Privet::Action::"read", resource)
when { context.purpose == "analytics" && context has dataset && context.dataset == "census" && resource in Privet::Table::"people" };

@id("ml-ratings-source")
permit (principal == Privet::User::"ml", action == Privet::Action::"read", resource)
when { context.purpose == "analytics" && context has dataset && context.dataset == "ratings" && resource in Privet::Table::"ratings" };
"#,
    );
    let census_spec = root.join("datasets/census.toml");
    write(
        &census_spec,
        r#"name = "census"
format = "parquet"
source = "SELECT id, full_name, email, birth_date, sex, zip, income FROM people"
[columns]
id = "pseudonym"
full_name = "drop"
email = "mask:email_partial"
birth_date = "age_band:5"
sex = "keep"
zip = "zip:3"
income = "range:10000"
[k_anonymity]
quasi_identifiers = ["birth_date", "sex", "zip"]
k = 5
max_suppressed_fraction = 0.05
"#,
    );
    let ratings_spec = root.join("datasets/ratings.toml");
    write(
        &ratings_spec,
        r#"name = "ratings"
format = "jsonl"
source = "SELECT user_id, item_id, rating, ts FROM ratings"
[columns]
user_id = "pseudonym"
item_id = "keep"
rating = "keep"
ts = "day"
"#,
    );

    // Census: k-anonymous by an independent count, masked, nothing raw.
    let census = root.join("out/census");
    let run = export(&config, &census_spec, &census);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rows = parquet_rows(&census.join("census.parquet"));
    assert!(rows.len() >= 1425, "{} of 1,500 rows kept", rows.len());
    let mut classes: HashMap<(String, String, String), usize> = HashMap::new();
    for row in &rows {
        let class = (
            row["birth_date"].clone(),
            row["sex"].clone(),
            row["zip"].clone(),
        );
        *classes.entry(class).or_default() += 1;
        assert!(!row.contains_key("full_name"), "{row:?}");
        assert!(row["email"].contains("***@own-mail.example"), "{row:?}");
        assert!(row["id"].starts_with("p_"), "{row:?}");
    }
    assert!(classes.values().all(|n| *n >= 5), "{classes:?}");
    for row in &rows {
        let text = format!("{row:?}");
        for (name, email) in &secrets {
            assert!(
                !text.contains(name.as_str()) && !text.contains(email.as_str()),
                "{text}"
            );
        }
    }

    // Ratings: JSONL, pseudonymous users that do not match the census's
    // tokens for the same people (another dataset, another key).
    let ratings = root.join("out/ratings");
    let run = export(&config, &ratings_spec, &ratings);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(ratings.join("ratings.jsonl")).expect("jsonl");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 15_000);
    assert!(lines
        .iter()
        .all(|r| r["item_id"].is_i64()
            && r["ts"].as_str().is_some_and(|t| t.ends_with("T00:00:00Z"))));
    let rating_users: HashSet<&str> = lines.iter().filter_map(|r| r["user_id"].as_str()).collect();
    let census_users: HashSet<&str> = rows.iter().map(|r| r["id"].as_str()).collect();
    assert!(rating_users.len() > 1000);
    assert!(rating_users.is_disjoint(&census_users));

    // A dataset the policy does not name is refused, and writes nothing.
    let other_spec = root.join("datasets/other.toml");
    write(
        &other_spec,
        &std::fs::read_to_string(&ratings_spec)
            .expect("spec")
            .replace("name = \"ratings\"", "name = \"everything\""),
    );
    let other = root.join("out/other");
    let run = export(&config, &other_spec, &other);
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("policy_denied"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!other.join("everything.jsonl").exists());
}
