//! Unit tests of the policy engine against the default demo policies.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::*;

fn principal(
    name: &str,
    kind: PrincipalKind,
    roles: &[&str],
    attrs: &[(&str, &str)],
) -> PrincipalSpec {
    PrincipalSpec {
        name: name.to_string(),
        kind,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn demo_principals() -> Vec<PrincipalSpec> {
    use PrincipalKind::*;
    vec![
        principal("recs-service", Service, &[], &[]),
        principal("marketing-service", Service, &[], &[]),
        principal("support-agent-eu", User, &["support"], &[("region", "EU")]),
        principal("orders-service", Service, &[], &[]),
        principal("compliance-officer", User, &[], &[]),
        principal("ml-team", User, &[], &[]),
        principal("admin", User, &[], &[]),
    ]
}

fn demo_tables() -> Vec<TableSpec> {
    let table = |name: &str, cols: &[(&str, Category)]| TableSpec {
        name: name.to_string(),
        columns: cols
            .iter()
            .map(|(c, category)| ColumnSpec {
                name: c.to_string(),
                category: *category,
                encrypted: false,
            })
            .collect(),
    };
    vec![
        table(
            "customers",
            &[
                ("id", Category::Identifier),
                ("email", Category::Email),
                ("phone", Category::Phone),
                ("zip", Category::Address),
                ("region", Category::None),
            ],
        ),
        table("payments", &[("card_number", Category::Card)]),
        table(
            "events",
            &[
                ("customer_id", Category::Identifier),
                ("kind", Category::None),
                ("ip_address", Category::Ip),
            ],
        ),
        table("products", &[("name", Category::None)]),
        table("orders", &[("id", Category::Identifier)]),
        table("order_items", &[("order_id", Category::Identifier)]),
        table("support_tickets", &[("body", Category::FreeText)]),
    ]
}

fn engine() -> PolicyEngine {
    PolicyEngine::load(
        &PolicySource::defaults(),
        &demo_principals(),
        &demo_tables(),
    )
    .expect("default policies load")
}

fn read(engine: &PolicyEngine, who: &str, table: &str, purpose: &str) -> Decision {
    engine
        .authorize(
            who,
            Action::Read,
            Resource::Table(table),
            RequestContext::local(purpose),
        )
        .expect("authorize")
}

fn source(name: &str, text: &str) -> PolicySource {
    PolicySource {
        origin: PathBuf::from(name),
        text: text.to_string(),
    }
}

#[test]
fn default_policies_validate_strictly_without_warnings() {
    let engine = engine();
    assert_eq!(engine.warnings(), &[] as &[String]);
    assert!(engine.policy_ids().contains(&"recs-read-behaviour"));
    assert_eq!(
        engine.origin("marketing-no-payments"),
        Some(PathBuf::from("<built-in>/marketing.cedar").as_path())
    );
}

#[test]
fn recs_service_reads_behaviour_for_its_purpose_only() {
    let engine = engine();
    let allowed = read(&engine, "recs-service", "events", "recommendation");
    assert!(allowed.allowed);
    assert_eq!(allowed.policy_ids, vec!["recs-read-behaviour"]);

    let wrong_purpose = read(&engine, "recs-service", "events", "marketing");
    assert!(!wrong_purpose.allowed);
    assert!(
        wrong_purpose.policy_ids.is_empty(),
        "deny by default names no policy"
    );
}

#[test]
fn explicit_forbids_are_named_in_denials() {
    let engine = engine();
    let d = read(&engine, "recs-service", "customers", "recommendation");
    assert!(!d.allowed);
    assert_eq!(d.policy_ids, vec!["recs-no-customers-or-payments"]);

    let d = read(&engine, "marketing-service", "payments", "marketing");
    assert_eq!(
        (d.allowed, d.policy_ids),
        (false, vec!["marketing-no-payments".to_string()])
    );

    // A forbid beats admin's break-glass permit only where it applies: admin is not forbidden.
    let d = read(&engine, "admin", "payments", "admin");
    assert_eq!(
        (d.allowed, d.policy_ids),
        (true, vec!["admin-break-glass".to_string()])
    );
    let d = read(&engine, "admin", "payments", "support");
    assert!(!d.allowed, "admin without the admin purpose gets nothing");
}

#[test]
fn compliance_and_ml_never_read_raw_rows() {
    let engine = engine();
    for who in ["compliance-officer", "ml-team"] {
        for table in ["customers", "events", "products"] {
            let d = read(&engine, who, table, "compliance");
            assert!(!d.allowed, "{who} read {table}");
            assert_eq!(d.policy_ids, vec!["no-raw-data-for-compliance-and-ml"]);
        }
    }
}

#[test]
fn roles_grant_through_membership() {
    let engine = engine();
    let d = read(&engine, "support-agent-eu", "support_tickets", "support");
    assert_eq!(d.policy_ids, vec!["support-read-tickets-and-orders"]);
    assert!(d.allowed);
    assert!(!read(&engine, "support-agent-eu", "payments", "support").allowed);
}

#[test]
fn columns_inherit_table_permits() {
    let engine = engine();
    let column = Resource::Column {
        table: "events",
        column: "kind",
    };
    let d = engine
        .authorize(
            "recs-service",
            Action::Read,
            column,
            RequestContext::local("recommendation"),
        )
        .unwrap();
    assert!(d.allowed);
    let column = Resource::Column {
        table: "customers",
        column: "email",
    };
    let d = engine
        .authorize(
            "recs-service",
            Action::Read,
            column,
            RequestContext::local("recommendation"),
        )
        .unwrap();
    assert!(!d.allowed);
}

#[test]
fn unknown_principal_and_table_are_denied() {
    let engine = engine();
    let d = read(&engine, "mallory", "products", "marketing");
    assert!(!d.allowed);
    assert!(d.errors[0].contains("unknown principal"));
    assert!(!read(&engine, "recs-service", "no_such_table", "recommendation").allowed);
}

#[test]
fn syntax_errors_name_file_and_line() {
    let text = "@id(\"ok\")\npermit(principal, action, resource);\n\n@id(\"bad\")\npermit(principal, action resource);\n";
    let err = PolicyEngine::load(&[source("p/bad.cedar", text)], &[], &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, PolicyError::Parse(ref l) if l.line == 5),
        "{msg}"
    );
    assert!(msg.contains("p/bad.cedar:5:"), "{msg}");
}

#[test]
fn policies_without_ids_or_with_duplicate_ids_are_refused() {
    let err = PolicyEngine::load(
        &[source("a.cedar", "\npermit(principal, action, resource);")],
        &[],
        &[],
    )
    .unwrap_err();
    assert!(
        matches!(err, PolicyError::MissingId(ref l) if l.line == 2),
        "{err}"
    );

    let p = "@id(\"same\") permit(principal, action, resource);";
    let err =
        PolicyEngine::load(&[source("a.cedar", p), source("b.cedar", p)], &[], &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"same\"") && msg.contains("a.cedar") && msg.contains("b.cedar"),
        "{msg}"
    );
}

#[test]
fn schema_violations_name_policy_file_and_line() {
    let text = "@id(\"typo\")\npermit(principal, action == Privet::Action::\"read\", resource)\nwhen { context.purpse == \"x\" };";
    let err = PolicyEngine::load(&[source("typo.cedar", text)], &[], &[]).unwrap_err();
    let PolicyError::Validation(errors) = &err else {
        panic!("expected a validation error, got {err}");
    };
    assert_eq!(errors.len(), 1, "{err}");
    assert_eq!(errors[0].origin, PathBuf::from("typo.cedar"));
    assert_eq!(errors[0].line, 3, "{err}");
    assert!(errors[0].message.contains("policy typo"), "{err}");

    let unknown_action =
        "@id(\"x\") permit(principal, action == Privet::Action::\"delete\", resource);";
    assert!(matches!(
        PolicyEngine::load(&[source("x.cedar", unknown_action)], &[], &[]),
        Err(PolicyError::Validation(_))
    ));
}

#[test]
fn templates_are_refused() {
    let text = "@id(\"t\") permit(principal == ?principal, action, resource);";
    let err = PolicyEngine::load(&[source("t.cedar", text)], &[], &[]).unwrap_err();
    assert!(err.to_string().contains("templates"), "{err}");
}

#[test]
fn policies_naming_missing_tables_or_principals_warn() {
    let text = "@id(\"w\") permit(principal == Privet::Service::\"recs-servce\", action, resource)\nwhen { resource in [Privet::Table::\"custmers\"] };";
    let engine = PolicyEngine::load(
        &[source("w.cedar", text)],
        &demo_principals(),
        &demo_tables(),
    )
    .unwrap();
    let warnings = engine.warnings().join("\n");
    assert!(
        warnings.contains("Privet::Service::\"recs-servce\""),
        "{warnings}"
    );
    assert!(
        warnings.contains("Privet::Table::\"custmers\""),
        "{warnings}"
    );
}

#[test]
fn read_dir_loads_cedar_files_in_order_and_refuses_an_empty_dir() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        PolicySource::read_dir(dir.path()),
        Err(PolicyError::NoPolicies { .. })
    ));
    for (name, text) in DEFAULT_POLICY_FILES {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not a policy").unwrap();
    let sources = PolicySource::read_dir(dir.path()).unwrap();
    assert_eq!(sources.len(), DEFAULT_POLICY_FILES.len());
    assert!(sources.windows(2).all(|w| w[0].origin < w[1].origin));
    PolicyEngine::load(&sources, &demo_principals(), &demo_tables()).unwrap();
}

#[test]
fn column_decisions_mask_and_deny_by_category() {
    let engine = engine();
    let ctx = |purpose| RequestContext::local(purpose);
    let col = |table, column| Resource::Column { table, column };
    let decide = |who: &str, action, table, column, purpose| {
        engine
            .authorize(who, action, col(table, column), ctx(purpose))
            .unwrap()
    };
    // recs: customer ids as pseudonyms (masked, filterable), never plain; IPs not at all.
    assert!(
        !decide(
            "recs-service",
            Action::Read,
            "events",
            "customer_id",
            "recommendation"
        )
        .allowed
    );
    let masked = decide(
        "recs-service",
        Action::ReadMasked,
        "events",
        "customer_id",
        "recommendation",
    );
    assert_eq!(masked.policy_ids, ["recs-pseudonymous-ids"]);
    assert_eq!(
        engine.annotation("recs-pseudonymous-ids", "mask"),
        Some("pseudonym")
    );
    assert!(
        decide(
            "recs-service",
            Action::Filter,
            "events",
            "customer_id",
            "recommendation"
        )
        .allowed
    );
    for action in [Action::Read, Action::ReadMasked] {
        assert!(
            !decide(
                "recs-service",
                action,
                "events",
                "ip_address",
                "recommendation"
            )
            .allowed
        );
    }
    // marketing: email partially, no phone, zip as zip3; rows filtered by opt-in.
    assert!(
        !decide(
            "marketing-service",
            Action::Read,
            "customers",
            "email",
            "marketing"
        )
        .allowed
    );
    assert!(
        decide(
            "marketing-service",
            Action::ReadMasked,
            "customers",
            "email",
            "marketing"
        )
        .allowed
    );
    assert!(
        !decide(
            "marketing-service",
            Action::Filter,
            "customers",
            "email",
            "marketing"
        )
        .allowed
    );
    for action in [Action::Read, Action::ReadMasked] {
        assert!(
            !decide(
                "marketing-service",
                action,
                "customers",
                "phone",
                "marketing"
            )
            .allowed
        );
    }
    assert_eq!(
        decide(
            "marketing-service",
            Action::ReadMasked,
            "customers",
            "zip",
            "marketing"
        )
        .policy_ids,
        ["marketing-zip3"]
    );
    assert!(
        decide(
            "marketing-service",
            Action::Read,
            "customers",
            "region",
            "marketing"
        )
        .allowed
    );
    assert_eq!(
        engine.annotation("marketing-read-customers", "row_filter"),
        Some("marketing_opt_in = 1")
    );
    let filters: Vec<_> = engine
        .annotated("row_filter")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        filters,
        [
            "marketing-read-customers",
            "marketing-read-orders",
            "ml-marketing-source",
            "support-read-customers",
            "support-read-tickets-and-orders"
        ]
    );
}

#[test]
fn policies_can_use_hour_source_address_and_anomaly_score() {
    let text = r#"
@id("office-hours-from-the-office")
permit(principal == Privet::Service::"recs-service", action == Privet::Action::"read", resource)
when {
  context.hour >= 8 && context.hour < 18 &&
  context.source_ip.isInRange(ip("10.0.0.0/8"))
};

@id("block-anomalous")
forbid(principal, action, resource) when { context.anomaly_score > 50 };
"#;
    let engine = PolicyEngine::load(
        &[source("ctx.cedar", text)],
        &demo_principals(),
        &demo_tables(),
    )
    .unwrap();
    let ask = |hour, ip: &str, anomaly_score| {
        let ctx = RequestContext {
            purpose: "recommendation",
            hour,
            source_ip: ip.parse().unwrap(),
            anomaly_score,
            dataset: None,
        };
        engine
            .authorize("recs-service", Action::Read, Resource::Table("events"), ctx)
            .unwrap()
    };
    assert!(ask(9, "10.1.2.3", 0).allowed);
    assert!(!ask(20, "10.1.2.3", 0).allowed, "off hours");
    assert!(
        !ask(9, "192.168.1.5", 0).allowed,
        "outside the office network"
    );
    let anomalous = ask(9, "10.1.2.3", 80);
    assert_eq!(
        (anomalous.allowed, anomalous.policy_ids),
        (false, vec!["block-anomalous".to_string()])
    );
    assert!(
        ask(9, "::1", 0).policy_ids.is_empty(),
        "IPv6 sources work too"
    );
}
