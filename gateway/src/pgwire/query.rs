//! Statements through the pipeline: the simple query protocol, and the
//! execution step shared with the extended protocol (`extended.rs`).

use ::pgwire::api::portal::Format;
use ::pgwire::messages::response::TransactionStatus;

use super::session::{self, session_statement, Control};
use super::types::{described_types, encode_row, fields};
use super::*;

/// Statements of both query protocols.
pub(super) struct Queries {
    pub(super) state: Arc<AppState>,
    pub(super) parser: Arc<super::extended::Parser>,
}

impl Queries {
    pub(super) fn new(state: Arc<AppState>) -> Queries {
        Queries {
            parser: Arc::new(super::extended::Parser::new(Arc::clone(&state))),
            state,
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: ::pgwire::api::store::PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(session) = client.session_extensions().get::<Session>() else {
            return Err(fatal("28000", "not authenticated".into()));
        };
        // Several statements in one Query run in order; the first error
        // ends the list, as in PostgreSQL.
        let mut status = client.transaction_status();
        let mut responses = Vec::new();
        for statement in split_statements(query) {
            let response = self
                .execute(&session, client.socket_addr(), status, statement, None)
                .await;
            status = match &response {
                Response::TransactionStart(_) => status.to_in_transaction_state(),
                Response::TransactionEnd(_) => status.to_idle_state(),
                Response::Error(_) => status.to_error_state(),
                _ => status,
            };
            let failed = matches!(response, Response::Error(_));
            responses.push(response);
            if failed {
                break;
            }
        }
        if responses.is_empty() {
            responses.push(Response::EmptyQuery);
        }
        Ok(responses)
    }
}

/// `query` cut into statements at the semicolons between them (not those
/// inside literals, identifiers or comments). Text the tokenizer cannot
/// read is one statement: the pipeline reports its syntax error.
pub(super) fn split_statements(query: &str) -> Vec<&str> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, query).tokenize_with_location() else {
        return vec![query.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
    };
    // Byte offsets of line starts, to turn (line, column) into an offset.
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(query.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u64, column: u64| -> Option<usize> {
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let column = usize::try_from(column).ok()?.checked_sub(1)?;
        Some(
            query[start..]
                .char_indices()
                .nth(column)
                .map_or(query.len(), |(i, _)| start + i),
        )
    };
    let mut statements = Vec::new();
    let mut begin = 0;
    for token in &tokens {
        if token.token == Token::SemiColon {
            let Some(at) = offset(token.span.start.line, token.span.start.column) else {
                return vec![query.trim()];
            };
            statements.push(&query[begin..at]);
            begin = at + 1;
        }
    }
    statements.push(&query[begin.min(query.len())..]);
    statements
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

impl Queries {
    /// One statement of either protocol: transaction control and session
    /// statements answered here, the rest through the pipeline. `described`
    /// (extended protocol): the column types the statement was described
    /// with and the result formats the client bound; the simple protocol
    /// types columns from the result itself, sent with its description.
    pub(super) async fn execute(
        &self,
        session: &Arc<Session>,
        peer: SocketAddr,
        status: TransactionStatus,
        sql: &str,
        described: Option<(&[Type], &Format)>,
    ) -> Response {
        let sql = sql.trim().trim_end_matches(';').trim_end();
        let formats = described.map(|(_, formats)| formats);
        if let Some(control) = Control::of(sql) {
            return control.response(status);
        }
        if status == TransactionStatus::Error {
            return error_response(error_info(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block"
                    .into(),
            ));
        }
        if let Some(answer) = session_statement(session, sql) {
            return answer.unwrap_or_else(error_response);
        }
        if let Some(statement) = catalog_read(sql) {
            return self.catalog(session, peer, &statement, formats).await;
        }
        if status == TransactionStatus::Transaction && crate::write::is_write(sql) {
            return error_response(error_info(
                "0A000",
                "writes inside BEGIN … COMMIT are not supported: Privet runs each write as its own transaction; send it outside a transaction block".into(),
            ));
        }
        match self.run(session, peer, sql).await {
            Ok(answer) => to_response(
                sql,
                answer,
                described,
                self.state.gateway.backend().dialect(),
            )
            .unwrap_or_else(error_response),
            Err(e) => error_response(to_error_info(&e)),
        }
    }

    /// One statement through the pipeline, audited like `POST /v1/query`.
    /// It runs in its own task: a cancel request (or a client hanging up)
    /// stops the wait for it, never the audit of what it did.
    async fn run(
        &self,
        session: &Arc<Session>,
        peer: SocketAddr,
        sql: &str,
    ) -> Result<crate::pipeline::QueryResult, RequestError> {
        let state = Arc::clone(&self.state);
        let session = Arc::clone(session);
        let sql = sql.to_owned();
        let task = tokio::spawn(async move { run_audited(&state, &session, peer, &sql).await });
        task.await.unwrap_or_else(|e| {
            Err(RequestError::new(
                ErrorCode::Internal,
                format!("the statement's task failed: {e}"),
            ))
        })
    }

    /// What a statement's result columns are: names and wire types, from
    /// its analysis. Refusals are the statement's own.
    pub(super) async fn describe(
        &self,
        session: &Session,
        peer: SocketAddr,
        sql: &str,
    ) -> Result<(Vec<String>, Vec<Type>), RequestError> {
        let sql = sql.trim().trim_end_matches(';').trim_end();
        if let Some(names) = session::result_columns(sql) {
            let types = vec![Type::TEXT; names.len()];
            return Ok((names, types));
        }
        if let Some(statement) = catalog_read(sql) {
            let (names, decls, _) = super::catalog::query(&statement.to_string())
                .map_err(|e| RequestError::new(ErrorCode::QueryFailed, e.to_string()))?;
            let types = catalog_types(&decls);
            return Ok((names, types));
        }
        let purpose = session.purpose().ok_or_else(|| no_purpose(session))?;
        let gateway = &self.state.gateway;
        let ctx = gateway.context(&session.principal, &purpose, peer.ip());
        let columns = gateway.describe(&session.principal, ctx, sql).await?;
        let dialect = gateway.backend().dialect();
        let counted = counted_columns(sql, dialect);
        let types = described_types(&columns, &counted, dialect);
        Ok((columns.into_iter().map(|c| c.name).collect(), types))
    }
}

/// A governed answer as wire messages. Columns are typed as `described`
/// says (extended protocol: what Describe told the client), else from the
/// result (the types the backend declared or the values it returned).
fn to_response(
    sql: &str,
    answer: crate::pipeline::QueryResult,
    described: Option<(&[Type], &Format)>,
    dialect: crate::masks::Dialect,
) -> Result<Response, Box<ErrorInfo>> {
    if let Some(affected) = answer.rows_affected {
        let affected = usize::try_from(affected).unwrap_or(usize::MAX);
        let verb = sql
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let tag = if verb == "INSERT" {
            Tag::new("INSERT").with_oid(0).with_rows(affected)
        } else {
            Tag::new(&verb).with_rows(affected)
        };
        return Ok(Response::Execution(tag));
    }
    let names: Vec<String> = answer
        .columns
        .iter()
        .map(|c| c.column.name.clone())
        .collect();
    let (types, formats) = match described {
        Some((types, formats)) if types.len() == names.len() => (types.to_vec(), Some(formats)),
        Some((types, _)) => {
            return Err(error_info(
                "XX000",
                format!(
                    "the statement was described with {} columns but returned {}; prepare it again",
                    types.len(),
                    names.len()
                ),
            ))
        }
        None => (
            answer
                .columns
                .iter()
                .map(|c| {
                    super::types::wire_type(
                        c.column.type_name.as_deref(),
                        c.transform.as_deref(),
                        dialect,
                    )
                })
                .collect(),
            None,
        ),
    };
    let fields = Arc::new(fields(&names, &types, formats));
    let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
    let mut rows = Vec::with_capacity(answer.rows.len());
    for row in &answer.rows {
        rows.push(
            encode_row(&mut encoder, &fields, row)
                .map_err(|misfit| error_info("22003", misfit.to_string()))?,
        );
    }
    Ok(Response::Query(QueryResponse::new(
        fields,
        futures_util::stream::iter(rows),
    )))
}

impl Queries {
    /// A read of the fixed catalog view (see `catalog.rs`), audited as a
    /// statement that touched no governed table. No purpose is needed:
    /// drivers look types up before a session declares one.
    async fn catalog(
        &self,
        session: &Session,
        peer: SocketAddr,
        statement: &sqlparser::ast::Statement,
        formats: Option<&Format>,
    ) -> Response {
        let sql = statement.to_string();
        let at = Started::now();
        let request_id = self.state.request_ids.next();
        let mut handled = Handled {
            principal: Some(Arc::clone(&session.principal)),
            purpose: session.purpose(),
            record: AccessRecord::default(),
        };
        handled.record.sql = Some(sql.clone());
        let result = super::catalog::query(&sql)
            .map_err(|e| RequestError::new(ErrorCode::QueryFailed, e.to_string()));
        let result = record(
            &self.state,
            peer,
            &request_id,
            ENDPOINT_CATALOG,
            at,
            handled,
            result,
        )
        .await;
        let (names, decls, rows) = match result {
            Ok(answer) => answer,
            Err(e) => return error_response(to_error_info(&e)),
        };
        let fields = Arc::new(fields(&names, &catalog_types(&decls), formats));
        let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
        let mut encoded = Vec::with_capacity(rows.len());
        for row in &rows {
            match encode_row(&mut encoder, &fields, row) {
                Ok(row) => encoded.push(row),
                Err(misfit) => return error_response(error_info("22003", misfit.to_string())),
            }
        }
        Response::Query(QueryResponse::new(
            fields,
            futures_util::stream::iter(encoded),
        ))
    }
}

/// The statement, parsed as PostgreSQL, when it reads only the fixed
/// catalog view.
fn catalog_read(sql: &str) -> Option<sqlparser::ast::Statement> {
    let first = sql.split_whitespace().next()?;
    if !first.eq_ignore_ascii_case("select") && !first.eq_ignore_ascii_case("with") {
        return None;
    }
    // Parsing costs: only a statement naming a `pg_` relation may qualify.
    if !sql
        .as_bytes()
        .windows(3)
        .any(|w| w.eq_ignore_ascii_case(b"pg_"))
    {
        return None;
    }
    let statement = crate::sql::parse_one(sql, crate::masks::Dialect::Postgres).ok()?;
    super::catalog::reads_only_catalog(&statement).then_some(statement)
}

fn catalog_types(decls: &[Option<String>]) -> Vec<Type> {
    decls
        .iter()
        .map(|d| super::types::wire_type(d.as_deref(), None, crate::masks::Dialect::Sqlite))
        .collect()
}

/// Which result columns of a plain `SELECT` are `count(...)`, by position
/// (none when the projection has a wildcard: positions would not line up).
fn counted_columns(sql: &str, dialect: crate::masks::Dialect) -> Vec<bool> {
    use sqlparser::ast::{SelectItem, SetExpr, Statement};
    let Ok(Statement::Query(query)) = crate::sql::parse_one(sql, dialect) else {
        return Vec::new();
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Vec::new();
    };
    let mut counted = Vec::new();
    for item in &select.projection {
        let expr = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => return Vec::new(),
        };
        counted.push(matches!(
            expr,
            sqlparser::ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("count")
        ));
    }
    counted
}

fn no_purpose(session: &Session) -> RequestError {
    let principal = &session.principal;
    RequestError::new(
        ErrorCode::PurposeDenied,
        format!(
            "no purpose declared: connect with options='-c {PURPOSE_SETTING}=PURPOSE' or run SET {PURPOSE_SETTING} = 'PURPOSE'; {} may declare: {}",
            principal.spec.name,
            principal
                .purposes
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

/// Audits a statement refused before it ran (at Describe), as HTTP audits
/// a refused request: probing the policies leaves a trace too.
pub(super) async fn audit_refusal(
    state: &AppState,
    session: &Session,
    peer: SocketAddr,
    sql: &str,
    refusal: RequestError,
) -> RequestError {
    let request_id = state.request_ids.next();
    let mut handled = Handled {
        principal: Some(Arc::clone(&session.principal)),
        purpose: session.purpose(),
        record: AccessRecord::default(),
    };
    handled.record.sql = Some(sql.to_owned());
    handled.record.refused(&refusal);
    let result = record::<()>(
        state,
        peer,
        &request_id,
        ENDPOINT_DESCRIBE,
        Started::now(),
        handled,
        Err(refusal),
    )
    .await;
    match result {
        Err(mut e) => {
            e.message = format!("{} (request {request_id})", e.message);
            e
        }
        Ok(()) => RequestError::new(ErrorCode::Internal, "refusal recorded as success"),
    }
}

/// The pipeline and the audit record of one statement.
async fn run_audited(
    state: &AppState,
    session: &Session,
    peer: SocketAddr,
    sql: &str,
) -> Result<crate::pipeline::QueryResult, RequestError> {
    let at = Started::now();
    let request_id = state.request_ids.next();
    let principal = Arc::clone(&session.principal);
    let mut handled = Handled {
        principal: Some(Arc::clone(&principal)),
        purpose: session.purpose(),
        record: AccessRecord::default(),
    };
    handled.record.sql = Some(sql.to_owned());
    let result = match handled.purpose.clone() {
        None => Err(no_purpose(session)),
        Some(purpose) => {
            let ctx = state.gateway.context(&principal, &purpose, peer.ip());
            state
                .gateway
                .query(&principal, ctx, sql, &mut handled.record)
                .await
        }
    };
    record(
        state,
        peer,
        &request_id,
        ENDPOINT_QUERY,
        at,
        handled,
        result,
    )
    .await
    .map_err(|mut e| {
        e.message = format!("{} (request {request_id})", e.message);
        e
    })
}

/// A column of type `text`, sent in text format.
pub(super) fn text_field(name: &str) -> FieldInfo {
    FieldInfo::new(name.to_owned(), None, None, Type::TEXT, FieldFormat::Text)
}

/// A result of `text` rows (`None` is SQL NULL).
pub(super) fn text_rows(
    fields: Vec<FieldInfo>,
    rows: impl Iterator<Item = Vec<Option<String>>>,
) -> Response {
    let fields = Arc::new(fields);
    let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
    let rows: Vec<PgWireResult<_>> = rows
        .map(|row| {
            for value in &row {
                encoder.encode_field(value)?;
            }
            Ok(encoder.take_row())
        })
        .collect();
    Response::Query(QueryResponse::new(fields, futures_util::stream::iter(rows)))
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn statements_split_at_semicolons_outside_literals() {
        assert_eq!(
            split_statements("SET a = 'x;y'; SELECT 1 ;\n SELECT \"a;b\" -- c;d\n;"),
            vec!["SET a = 'x;y'", "SELECT 1", "SELECT \"a;b\" -- c;d"]
        );
        assert_eq!(split_statements("  ;; "), Vec::<&str>::new());
        assert_eq!(
            split_statements("SELECT 'é;'; SELECT 2"),
            vec!["SELECT 'é;'", "SELECT 2"]
        );
    }
}
