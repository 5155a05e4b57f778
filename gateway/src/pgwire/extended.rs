//! The extended query protocol: Parse, Bind, Describe, Execute, Sync, with
//! named and unnamed statements and portals (pgwire keeps them; portals
//! with a row limit are suspended and resumed by pgwire too).
//!
//! A statement is parsed once, at Parse, to count and type its `$n`
//! parameters (`params.rs`); at Execute the bound values are put in as
//! literals and the statement runs through the same pipeline as a simple
//! query (`Queries::execute`). Describe answers from the statement's
//! analysis alone, with stand-in values for the parameters: nothing runs.

use ::pgwire::api::portal::{Format, Portal};
use ::pgwire::api::query::ExtendedQueryHandler;
use ::pgwire::api::results::{DescribePortalResponse, DescribeStatementResponse};
use ::pgwire::api::stmt::{QueryParser, StoredStatement};
use ::pgwire::api::store::PortalStore;
use sqlparser::ast::Statement;

use super::params;
use super::session;
use super::types::fields;
use super::*;

/// A parsed statement, as pgwire stores it per name.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    /// The client's text.
    sql: Arc<str>,
    /// The parsed statement, when it has parameters to put in.
    parsed: Option<Arc<Statement>>,
    /// The parameter types inferred from the statement.
    inferred: Arc<Vec<Type>>,
    /// Its result columns, once described, and for which purpose.
    described: Arc<Mutex<Option<DescribedFor>>>,
}

/// A description and the purpose it was made for.
type DescribedFor = (String, Arc<Described>);

/// A statement's result columns, as Describe tells the client.
#[derive(Debug)]
pub(super) struct Described {
    names: Vec<String>,
    types: Vec<Type>,
}

/// Parses statements for pgwire's statement store.
pub(super) struct Parser {
    state: Arc<AppState>,
}

impl Parser {
    pub(super) fn new(state: Arc<AppState>) -> Parser {
        Parser { state }
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let text = sql.trim().trim_end_matches(';').trim_end();
        let unparsed = Prepared {
            sql: Arc::from(text),
            parsed: None,
            inferred: Arc::new(Vec::new()),
            described: Arc::default(),
        };
        if session::result_columns(text).is_some() {
            return Ok(Some(unparsed));
        }
        let gateway = &self.state.gateway;
        let dialect = gateway.backend().dialect();
        let statement = match crate::sql::parse_one(text, dialect) {
            Ok(statement) => statement,
            Err(crate::sql::AnalysisError::MultipleStatements(_)) => {
                return Err(PgWireError::UserError(error_info(
                    "42601",
                    "cannot insert multiple commands into a prepared statement".into(),
                )))
            }
            // The pipeline reports it, audited, when the statement runs.
            Err(_) => return Ok(Some(unparsed)),
        };
        // Other placeholder styles (`?`, `:name`) are the pipeline's to
        // refuse when the statement runs, as over HTTP.
        let n = match params::count(&statement) {
            Ok(n) if n > 0 => n,
            _ => return Ok(Some(unparsed)),
        };
        let inferred = params::infer(&statement, n, gateway.catalog(), dialect);
        Ok(Some(Prepared {
            parsed: Some(Arc::new(statement)),
            inferred: Arc::new(inferred),
            ..unparsed
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.inferred.as_ref().clone())
    }

    fn get_result_schema(
        &self,
        _stmt: &Prepared,
        _column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        // Result columns depend on the session's principal and purpose:
        // `do_describe_*` answer them.
        Ok(Vec::new())
    }
}

impl Prepared {
    /// The parameter types: the client's where it named them, else inferred.
    fn parameter_types(&self, client: &[Option<Type>]) -> Vec<Type> {
        let n = client.len().max(self.inferred.len());
        (0..n)
            .map(|i| params::effective_type(client, &self.inferred, i))
            .collect()
    }

    /// The statement with stand-in values for its parameters (describing).
    fn with_placeholders(&self, types: &[Type]) -> Result<String, Box<ErrorInfo>> {
        match &self.parsed {
            None => Ok(self.sql.to_string()),
            Some(parsed) => {
                let values: Vec<_> = types.iter().map(params::placeholder_value).collect();
                params::substitute(parsed, &values)
            }
        }
    }

    /// The statement with the portal's bound values put in.
    fn bound(&self, portal: &Portal<Prepared>) -> Result<String, Box<ErrorInfo>> {
        let Some(parsed) = &self.parsed else {
            if !portal.parameters.is_empty() {
                return Err(error_info(
                    "08P01",
                    format!(
                        "bind message supplies {} parameters, but the statement has none",
                        portal.parameters.len()
                    ),
                ));
            }
            return Ok(self.sql.to_string());
        };
        let types = self.parameter_types(&portal.statement.parameter_types);
        if portal.parameters.len() != types.len() {
            return Err(error_info(
                "08P01",
                format!(
                    "bind message supplies {} parameters, but the statement requires {}",
                    portal.parameters.len(),
                    types.len()
                ),
            ));
        }
        let values = types
            .iter()
            .enumerate()
            .map(|(i, ty)| params::literal(portal, i, ty))
            .collect::<Result<Vec<_>, _>>()?;
        params::substitute(parsed, &values)
    }
}

impl Queries {
    /// The statement's result columns for the session's purpose: described
    /// once (analysis, rewrite and a backend prepare, with stand-in
    /// parameter values), then kept with the statement. A value's type
    /// does not change what a column is, so one description serves every
    /// execution. Not audited here.
    async fn described(
        &self,
        session: &Session,
        peer: SocketAddr,
        statement: &StoredStatement<Prepared>,
    ) -> Result<Arc<Described>, RequestError> {
        let prepared = &statement.statement;
        let purpose = session.purpose().unwrap_or_default();
        if let Some((p, described)) = prepared
            .described
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            if *p == purpose {
                return Ok(Arc::clone(described));
            }
        }
        let types = prepared.parameter_types(&statement.parameter_types);
        let sql = prepared
            .with_placeholders(&types)
            .map_err(|e| RequestError::new(ErrorCode::BadRequest, e.message.clone()))?;
        let (names, types) = self.describe(session, peer, &sql).await?;
        let described = Arc::new(Described { names, types });
        *prepared.described.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((purpose, Arc::clone(&described)));
        Ok(described)
    }

    /// [`Queries::described`] for a Describe message: a refusal is audited
    /// (probing the policies leaves a trace) and returned as the error.
    async fn describe_message(
        &self,
        session: &Session,
        peer: SocketAddr,
        statement: &StoredStatement<Prepared>,
    ) -> PgWireResult<Arc<Described>> {
        match self.described(session, peer, statement).await {
            Ok(described) => Ok(described),
            Err(refusal) => {
                let sql = statement.statement.sql.to_string();
                let refusal = query::audit_refusal(&self.state, session, peer, &sql, refusal).await;
                Err(PgWireError::UserError(to_error_info(&refusal)))
            }
        }
    }
}

fn authenticated<C: ClientInfo>(client: &C) -> PgWireResult<Arc<Session>> {
    client
        .session_extensions()
        .get::<Session>()
        .ok_or_else(|| fatal("28000", "not authenticated".into()))
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::clone(&self.parser)
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = authenticated(client)?;
        let parameters = target.statement.parameter_types(&target.parameter_types);
        let described = self
            .describe_message(&session, client.socket_addr(), target)
            .await?;
        let fields = fields(&described.names, &described.types, None);
        Ok(DescribeStatementResponse::new(parameters, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = authenticated(client)?;
        let described = self
            .describe_message(&session, client.socket_addr(), &portal.statement)
            .await?;
        let fields = fields(
            &described.names,
            &described.types,
            Some(&portal.result_column_format),
        );
        Ok(DescribePortalResponse::new(fields))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = authenticated(client)?;
        let peer = client.socket_addr();
        let sql = match portal.statement.statement.bound(portal) {
            Ok(sql) => sql,
            Err(e) => return Ok(error_response(e)),
        };
        // Values are encoded as the statement was described. When it cannot
        // be described, running it gives the (audited) refusal.
        let described = self.described(&session, peer, &portal.statement).await.ok();
        let described = described
            .as_ref()
            .map(|d| (d.types.as_slice(), &portal.result_column_format));
        Ok(self
            .execute(&session, peer, client.transaction_status(), &sql, described)
            .await)
    }
}
