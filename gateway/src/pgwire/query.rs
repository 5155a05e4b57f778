//! Statements through the pipeline: the simple query protocol.

use super::*;
use super::session::session_statement;

/// The simple query protocol.
pub(super) struct Queries {
    pub(super) state: Arc<AppState>,
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
        let statement = query.trim().trim_end_matches(';').trim_end();
        if let Some(answer) = session_statement(&session, statement) {
            return Ok(vec![answer.unwrap_or_else(error_response)]);
        }
        let response = self
            .run(&session, client.socket_addr(), statement)
            .await
            .unwrap_or_else(|e| error_response(to_error_info(&e)));
        Ok(vec![response])
    }
}

impl Queries {
    /// One statement through the pipeline, audited like `POST /v1/query`.
    async fn run(
        &self,
        session: &Session,
        peer: SocketAddr,
        sql: &str,
    ) -> Result<Response, RequestError> {
        let state = &self.state;
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
            None => Err(RequestError::new(
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
            )),
            Some(purpose) => {
                let ctx = state.gateway.context(&principal, &purpose, peer.ip());
                state
                    .gateway
                    .query(&principal, ctx, sql, &mut handled.record)
                    .await
            }
        };
        let result = record(
            state,
            peer,
            &request_id,
            ENDPOINT_QUERY,
            at,
            handled,
            result,
        )
        .await;
        result
            .map(|answer| to_response(sql, answer))
            .map_err(|mut e| {
                e.message = format!("{} (request {request_id})", e.message);
                e
            })
    }
}

/// A governed answer as wire messages: rows as text, every column `text`.
pub(super) fn to_response(sql: &str, answer: crate::pipeline::QueryResult) -> Response {
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
        return Response::Execution(tag);
    }
    let fields: Vec<FieldInfo> = answer
        .columns
        .iter()
        .map(|c| text_field(&c.column.name))
        .collect();
    text_rows(
        fields,
        answer
            .rows
            .iter()
            .map(|row| row.iter().map(text_value).collect()),
    )
}

/// A column of type `text`, sent in text format.
pub(super) fn text_field(name: &str) -> FieldInfo {
    FieldInfo::new(name.to_owned(), None, None, Type::TEXT, FieldFormat::Text)
}

/// A result of `text` rows (`None` is SQL NULL).
pub(super) fn text_rows(fields: Vec<FieldInfo>, rows: impl Iterator<Item = Vec<Option<String>>>) -> Response {
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

/// A JSON value in PostgreSQL's text format: strings as they are, numbers
/// as written, booleans `t`/`f`, null as NULL, arrays and objects as JSON.
pub(super) fn text_value(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(if *b { "t" } else { "f" }.to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

