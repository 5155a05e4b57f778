//! Loading, validating and evaluating a policy set.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode,
    Validator,
};
use miette::Diagnostic;

use crate::error::{Located, PolicyError};
use crate::model::{Action, Decision, PrincipalSpec, RequestContext, Resource, TableSpec};

/// The Cedar schema of Privet's entity model.
pub const SCHEMA_SRC: &str = include_str!("../cedar/schema.cedarschema");

/// The default policies for the demo principals: (file name, text).
/// `privet serve` writes them into a new data dir for operators to edit.
pub const DEFAULT_POLICY_FILES: &[(&str, &str)] = &[
    (
        "recommendations.cedar",
        include_str!("../cedar/recommendations.cedar"),
    ),
    ("marketing.cedar", include_str!("../cedar/marketing.cedar")),
    ("support.cedar", include_str!("../cedar/support.cedar")),
    ("analytics.cedar", include_str!("../cedar/analytics.cedar")),
    (
        "fulfilment.cedar",
        include_str!("../cedar/fulfilment.cedar"),
    ),
    (
        "governance.cedar",
        include_str!("../cedar/governance.cedar"),
    ),
];

/// One policy file's text and where it came from.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// Shown in error messages.
    pub origin: PathBuf,
    pub text: String,
}

impl PolicySource {
    /// Reads every `*.cedar` file of `dir`, in file-name order.
    pub fn read_dir(dir: &Path) -> Result<Vec<PolicySource>, PolicyError> {
        let io_err = |source| PolicyError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err)? {
            let path = entry.map_err(io_err)?.path();
            if path.extension().is_some_and(|e| e == "cedar") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        if paths.is_empty() {
            return Err(PolicyError::NoPolicies {
                dir: dir.to_path_buf(),
            });
        }
        paths
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Io {
                    path: path.clone(),
                    source,
                })?;
                Ok(PolicySource { origin: path, text })
            })
            .collect()
    }

    /// The built-in default policies.
    pub fn defaults() -> Vec<PolicySource> {
        DEFAULT_POLICY_FILES
            .iter()
            .map(|(name, text)| PolicySource {
                origin: PathBuf::from(format!("<built-in>/{name}")),
                text: (*text).to_string(),
            })
            .collect()
    }
}

/// A validated policy set with the entities it is evaluated against.
///
/// Immutable: a reload builds a new engine and swaps it in whole, so a
/// request never sees half of an old and half of a new policy set.
pub struct PolicyEngine {
    schema: Schema,
    policies: PolicySet,
    entities: Entities,
    authorizer: Authorizer,
    principals: HashMap<String, EntityUid>,
    origins: BTreeMap<String, PathBuf>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("policies", &self.origins.len())
            .field("principals", &self.principals.len())
            .finish_non_exhaustive()
    }
}

fn uid(type_name: &str, id: &str) -> Result<EntityUid, PolicyError> {
    let ty = EntityTypeName::from_str(type_name).map_err(|e| PolicyError::Internal {
        message: format!("bad entity type {type_name}: {e}"),
    })?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// The first labelled location of a diagnostic, if any.
fn first_label(diag: &dyn Diagnostic) -> Option<usize> {
    diag.labels()
        .and_then(|mut labels| labels.next())
        .map(|l| l.offset())
}

impl PolicyEngine {
    /// Parses, validates (strictly, against [`SCHEMA_SRC`]) and prepares a
    /// policy set. Every policy needs a unique `@id("...")`: the ids are what
    /// decisions, errors and the audit log name.
    pub fn load(
        sources: &[PolicySource],
        principals: &[PrincipalSpec],
        tables: &[TableSpec],
    ) -> Result<PolicyEngine, PolicyError> {
        let schema = schema()?;
        let mut policies = PolicySet::new();
        let mut origins: BTreeMap<String, PathBuf> = BTreeMap::new();
        // Source text per policy id, to turn validator spans into lines.
        let mut texts: HashMap<String, usize> = HashMap::new();
        for (index, source) in sources.iter().enumerate() {
            let parsed = PolicySet::from_str(&source.text).map_err(|e| {
                let (line, column) = first_label(&e).map_or((0, 0), |o| line_col(&source.text, o));
                PolicyError::Parse(Located {
                    origin: source.origin.clone(),
                    line,
                    column,
                    message: e.to_string(),
                })
            })?;
            if parsed.templates().next().is_some() {
                return Err(PolicyError::Parse(Located {
                    origin: source.origin.clone(),
                    line: 0,
                    column: 0,
                    message: "policy templates (?principal, ?resource) are not supported"
                        .to_string(),
                }));
            }
            for policy in parsed.policies() {
                let Some(id) = policy.annotation("id") else {
                    let (line, column) = policy
                        .to_string()
                        .lines()
                        .next()
                        .and_then(|first| source.text.find(first))
                        .map_or((0, 0), |o| line_col(&source.text, o));
                    return Err(PolicyError::MissingId(Located {
                        origin: source.origin.clone(),
                        line,
                        column,
                        message: "every policy needs an @id(\"...\") annotation".to_string(),
                    }));
                };
                if let Some(first) = origins.get(id) {
                    return Err(PolicyError::DuplicateId {
                        id: id.to_string(),
                        first: first.clone(),
                        second: source.origin.clone(),
                    });
                }
                policies
                    .add(policy.new_id(PolicyId::new(id)))
                    .map_err(|e| PolicyError::Internal {
                        message: format!("adding policy {id}: {e}"),
                    })?;
                origins.insert(id.to_string(), source.origin.clone());
                texts.insert(id.to_string(), index);
            }
        }

        let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !validation.validation_passed() {
            let errors = validation
                .validation_errors()
                .map(|e| {
                    let id = e.policy_id().to_string();
                    let source = texts.get(&id).and_then(|i| sources.get(*i));
                    let (line, column) = match (source, first_label(e)) {
                        (Some(s), Some(offset)) => line_col(&s.text, offset),
                        _ => (0, 0),
                    };
                    let help = e.help().map(|h| format!(" ({h})")).unwrap_or_default();
                    Located {
                        origin: source.map(|s| s.origin.clone()).unwrap_or_default(),
                        line,
                        column,
                        message: format!("policy {id}: {e}{help}"),
                    }
                })
                .collect();
            return Err(PolicyError::Validation(errors));
        }
        let mut warnings: Vec<String> = validation
            .validation_warnings()
            .map(|w| format!("policy {}: {w}", w.policy_id()))
            .collect();

        let (entities, principal_uids) = build_entities(&schema, principals, tables)?;
        warnings.extend(unknown_entity_warnings(&policies, &entities));

        Ok(PolicyEngine {
            schema,
            policies,
            entities,
            authorizer: Authorizer::new(),
            principals: principal_uids,
            origins,
            warnings,
        })
    }

    /// Ids of all loaded policies, sorted.
    pub fn policy_ids(&self) -> Vec<&str> {
        self.origins.keys().map(String::as_str).collect()
    }

    /// The value of annotation `key` (e.g. `mask`, `row_filter`) on a policy.
    pub fn annotation(&self, policy_id: &str, key: &str) -> Option<&str> {
        self.policies.annotation(&PolicyId::new(policy_id), key)
    }

    /// Every policy carrying annotation `key`: (policy id, value), by id.
    pub fn annotated(&self, key: &str) -> Vec<(&str, &str)> {
        self.origins
            .keys()
            .filter_map(|id| self.annotation(id, key).map(|v| (id.as_str(), v)))
            .collect()
    }

    /// The file a policy came from.
    pub fn origin(&self, policy_id: &str) -> Option<&Path> {
        self.origins.get(policy_id).map(PathBuf::as_path)
    }

    /// Non-fatal findings: policies naming principals, tables or columns that
    /// do not exist (usually a typo), and Cedar's validation warnings.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Decides whether `principal` may perform `action` on `resource`.
    /// Unknown principals and resources are denied, never an error that a
    /// caller could mistake for "no opinion".
    pub fn authorize(
        &self,
        principal: &str,
        action: Action,
        resource: Resource<'_>,
        context: RequestContext<'_>,
    ) -> Result<Decision, PolicyError> {
        let Some(principal_uid) = self.principals.get(principal) else {
            return Ok(Decision {
                allowed: false,
                policy_ids: Vec::new(),
                errors: vec![format!("unknown principal {principal}")],
            });
        };
        let resource_uid = match resource {
            Resource::Table(t) => uid("Privet::Table", t)?,
            Resource::Column { table, column } => {
                uid("Privet::Column", &format!("{table}.{column}"))?
            }
            Resource::Dataset(d) => uid("Privet::Dataset", d)?,
            Resource::AuditLog => uid("Privet::AuditLog", "audit")?,
            Resource::Gateway => uid("Privet::Gateway", "gateway")?,
        };
        let action_uid = uid("Privet::Action", action.as_str())?;
        let dataset = context.dataset.map(|d| {
            (
                "dataset".to_string(),
                RestrictedExpression::new_string(d.to_string()),
            )
        });
        let context = Context::from_pairs(
            [
                (
                    "purpose".to_string(),
                    RestrictedExpression::new_string(context.purpose.to_string()),
                ),
                (
                    "hour".to_string(),
                    RestrictedExpression::new_long(i64::from(context.hour)),
                ),
                (
                    "source_ip".to_string(),
                    RestrictedExpression::new_ip(context.source_ip.to_string()),
                ),
                (
                    "anomaly_score".to_string(),
                    RestrictedExpression::new_long(i64::from(context.anomaly_score)),
                ),
            ]
            .into_iter()
            .chain(dataset),
        )
        .map_err(|e| PolicyError::Request {
            message: e.to_string(),
        })?;
        let request = Request::new(
            principal_uid.clone(),
            action_uid,
            resource_uid,
            context,
            Some(&self.schema),
        )
        .map_err(|e| PolicyError::Request {
            message: format!("{action} on {resource}: {e}"),
        })?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &self.entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        let mut policy_ids: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        policy_ids.sort();
        Ok(Decision {
            allowed: response.decision() == CedarDecision::Allow && errors.is_empty(),
            policy_ids,
            errors,
        })
    }
}

/// The parsed Cedar schema.
pub fn schema() -> Result<Schema, PolicyError> {
    Schema::from_cedarschema_str(SCHEMA_SRC)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| PolicyError::Internal {
            message: format!("built-in Cedar schema does not parse: {e}"),
        })
}

fn build_entities(
    schema: &Schema,
    principals: &[PrincipalSpec],
    tables: &[TableSpec],
) -> Result<(Entities, HashMap<String, EntityUid>), PolicyError> {
    let entity_err = |what: String| {
        move |e: cedar_policy::EntityAttrEvaluationError| PolicyError::Entities {
            message: format!("{what}: {e}"),
        }
    };
    let mut entities = Vec::new();
    let mut principal_uids = HashMap::new();
    let mut roles = BTreeSet::new();
    for p in principals {
        let principal_uid = uid(p.kind.entity_type(), &p.name)?;
        let parents = p
            .roles
            .iter()
            .map(|r| {
                roles.insert(r.clone());
                uid("Privet::Role", r)
            })
            .collect::<Result<HashSet<_>, _>>()?;
        let tags = p
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.clone())));
        entities.push(
            Entity::new_with_tags(principal_uid.clone(), [], parents, tags)
                .map_err(entity_err(format!("principal {}", p.name)))?,
        );
        principal_uids.insert(p.name.clone(), principal_uid);
    }
    for role in roles {
        entities.push(Entity::new_no_attrs(
            uid("Privet::Role", &role)?,
            HashSet::new(),
        ));
    }
    for table in tables {
        let table_uid = uid("Privet::Table", &table.name)?;
        entities.push(Entity::new_no_attrs(table_uid.clone(), HashSet::new()));
        for column in &table.columns {
            let attrs = HashMap::from([
                (
                    "category".to_string(),
                    RestrictedExpression::new_string(column.category.as_str().to_string()),
                ),
                (
                    "encrypted".to_string(),
                    RestrictedExpression::new_bool(column.encrypted),
                ),
            ]);
            let column_uid = uid("Privet::Column", &format!("{}.{}", table.name, column.name))?;
            entities.push(
                Entity::new(column_uid, attrs, HashSet::from([table_uid.clone()]))
                    .map_err(entity_err(format!("column {}.{}", table.name, column.name)))?,
            );
        }
    }
    for singleton in [
        uid("Privet::AuditLog", "audit")?,
        uid("Privet::Gateway", "gateway")?,
    ] {
        entities.push(Entity::new_no_attrs(singleton, HashSet::new()));
    }
    let entities =
        Entities::from_entities(entities, Some(schema)).map_err(|e| PolicyError::Entities {
            message: e.to_string(),
        })?;
    Ok((entities, principal_uids))
}

/// Entity literals in policies that name no known entity: almost always a
/// typo (`Privet::Table::"custmers"`) that would silently make a policy inert.
fn unknown_entity_warnings(policies: &PolicySet, entities: &Entities) -> Vec<String> {
    fn collect(value: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(entity) = map.get("__entity").or_else(|| map.get("entity")) {
                    if let (Some(ty), Some(id)) = (
                        entity.get("type").and_then(|t| t.as_str()),
                        entity.get("id").and_then(|i| i.as_str()),
                    ) {
                        out.push((ty.to_string(), id.to_string()));
                    }
                }
                map.values().for_each(|v| collect(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut warnings = Vec::new();
    for policy in policies.policies() {
        let Ok(json) = policy.to_json() else { continue };
        let mut found = Vec::new();
        collect(&json, &mut found);
        for (ty, id) in found {
            // Datasets are declared by export specs, which the engine does
            // not read: a policy may name one before its spec exists.
            if ty == "Privet::Action" || ty == "Privet::Role" || ty == "Privet::Dataset" {
                continue;
            }
            let known = uid(&ty, &id)
                .map(|u| entities.get(&u).is_some())
                .unwrap_or(false);
            if !known {
                warnings.push(format!(
                    "policy {} names {ty}::\"{id}\", which does not exist (typo, or a table the database does not have?)",
                    policy.id()
                ));
            }
        }
    }
    warnings.sort();
    warnings.dedup();
    warnings
}
