//! Startup and login: user = principal, password = its API key, checked
//! by SCRAM-SHA-256 against the principal's stored verifier
//! (`pg_scram_sha256`), so neither the key nor a password equivalent
//! crosses the wire; over TLS also SCRAM-SHA-256-PLUS (channel binding).

use ::pgwire::api::auth::sasl::scram::{ScramAuth, ScramSecret};
use ring::hmac;

use super::*;

/// The SCRAM credentials of the principals. Unknown users and principals
/// without a verifier get a mock verifier, so the exchange runs the same and
/// the client cannot tell them from a wrong key (as PostgreSQL does).
pub(super) struct Keys {
    state: Arc<AppState>,
    /// Derives the mock salts and keys: random per process, so a mock salt
    /// is stable for a user across attempts yet unguessable.
    mock: hmac::Key,
}

impl Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys")
    }
}

impl Keys {
    fn mock_secret(&self, user: &str) -> ScramSecret {
        let part = |label: &[u8]| {
            let mut ctx = hmac::Context::with_key(&self.mock);
            ctx.update(label);
            ctx.update(user.as_bytes());
            ctx.sign().as_ref().to_vec()
        };
        let mut salt = part(b"salt");
        salt.truncate(16);
        ScramSecret::Verifier {
            salt,
            iterations: crate::keys::SCRAM_ITERATIONS as usize,
            stored_key: part(b"stored"),
            server_key: part(b"server"),
        }
    }
}

#[async_trait]
impl AuthSource<Arc<PrincipalConfig>> for Keys {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        // Only SCRAM verifiers are stored; there is no password to give.
        Err(fatal(
            "28000",
            "this authentication method is not supported".into(),
        ))
    }

    async fn get_scram_secret(
        &self,
        login: &LoginInfo,
    ) -> PgWireResult<(ScramSecret, Option<Arc<PrincipalConfig>>)> {
        let user = login.user().unwrap_or_default();
        let principal = self.state.gateway.principal(user);
        let secret = principal
            .as_ref()
            .and_then(|p| p.pg_scram_sha256.as_ref())
            .map(|v| ScramSecret::Verifier {
                salt: v.salt.clone(),
                iterations: usize::try_from(v.iterations.get()).unwrap_or(usize::MAX),
                stored_key: v.stored_key.to_vec(),
                server_key: v.server_key.to_vec(),
            });
        Ok(match secret {
            Some(secret) => (secret, principal),
            None => (self.mock_secret(user), None),
        })
    }
}

/// Why a login cannot succeed whatever the client sends, kept for the
/// log and audit only: the client hears the generic 28P01.
struct LoginProblem(String);

/// Startup: transport and database checks, SCRAM authentication, purpose
/// from the startup options.
pub(super) struct Startup {
    state: Arc<AppState>,
    driver: AuthDriver<DefaultServerParameterProvider, Arc<PrincipalConfig>>,
    /// SCRAM-SHA-256 (and -PLUS) for TLS connections.
    scram_tls: ScramAuth<Arc<PrincipalConfig>>,
    /// SCRAM-SHA-256 for plaintext ones: -PLUS is not offered without TLS.
    scram_plain: ScramAuth<Arc<PrincipalConfig>>,
    require_tls: bool,
}

impl Startup {
    pub(super) fn new(
        state: Arc<AppState>,
        front: &Front,
        connections: Arc<ConnectionManager>,
    ) -> Result<Startup, crate::keys::RandomError> {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = SERVER_VERSION.to_owned();
        parameters.is_superuser = false;
        parameters.default_transaction_read_only = true;
        let mock_key: [u8; 32] = crate::keys::random_bytes()?;
        let keys: Arc<dyn AuthSource<Arc<PrincipalConfig>>> = Arc::new(Keys {
            state: Arc::clone(&state),
            mock: hmac::Key::new(hmac::HMAC_SHA256, &mock_key),
        });
        let scram_plain = ScramAuth::new(Arc::clone(&keys));
        let mut scram_tls = ScramAuth::new(keys);
        if let Some(tls) = &front.tls {
            if let Err(e) = scram_tls.configure_certificate(&tls.cert_pem) {
                // Without -PLUS, TLS logins still use SCRAM-SHA-256.
                tracing::warn!(error = %e, "pg: no SCRAM channel binding for this certificate");
            }
        }
        Ok(Startup {
            driver: AuthDriver::new(parameters).with_connection_manager(connections),
            scram_tls,
            scram_plain,
            require_tls: front.require_tls,
            state,
        })
    }

    /// Logs and audits a refused login (plaintext when TLS is required,
    /// wrong database, unknown user, no verifier, wrong key), as HTTP audits
    /// unauthenticated requests, with the real reason; returns what the
    /// client is told.
    async fn refused<C: ClientInfo>(&self, client: &C, error: PgWireError) -> PgWireError {
        let user = client.metadata().get("user").cloned().unwrap_or_default();
        let problem = client.session_extensions().get::<LoginProblem>();
        let (reason, told) = match error {
            PgWireError::InvalidPassword(_) => {
                let reason = problem
                    .map(|p| p.0.clone())
                    .unwrap_or_else(|| format!("wrong API key for principal \"{user}\""));
                (
                    format!("password authentication failed for user \"{user}\": {reason}"),
                    fatal(
                        "28P01",
                        format!("password authentication failed for user \"{user}\""),
                    ),
                )
            }
            other => (other.to_string(), other),
        };
        tracing::info!(peer = %client.socket_addr(), %user, %reason, "pg: login refused");
        let refusal = RequestError::new(ErrorCode::Unauthenticated, reason);
        let _ = record::<()>(
            &self.state,
            client.socket_addr(),
            &self.state.request_ids.next(),
            ENDPOINT_STARTUP,
            Started::now(),
            Handled::default(),
            Err(refusal),
        )
        .await;
        told
    }

    /// Why `user` cannot log in whatever key it presents, if so.
    fn login_problem(&self, user: &str) -> Option<String> {
        match self.state.gateway.principal(user) {
            None => Some(format!("no principal is named \"{user}\"")),
            Some(p) if p.pg_scram_sha256.is_none() => Some(format!(
                "principal \"{user}\" has no pg_scram_sha256 verifier in the config \
                 (`privet keys pg-verifier` prints one for its API key)"
            )),
            Some(_) => None,
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let outcome = match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                ::pgwire::api::auth::protocol_negotiation(client, startup).await?;
                ::pgwire::api::auth::save_startup_parameters_to_metadata(client, startup);
                if self.require_tls && !client.is_secure() {
                    let error = fatal(
                        "28000",
                        "this server requires TLS: connect with sslmode=require (or verify-ca/verify-full)"
                            .into(),
                    );
                    return Err(self.refused(client, error).await);
                }
                let database = client.metadata().get(METADATA_DATABASE).cloned();
                if database.as_deref() != Some(DATABASE) {
                    let error = fatal(
                        "3D000",
                        format!(
                            "database \"{}\" does not exist: connect to database \"{DATABASE}\"",
                            database.unwrap_or_default()
                        ),
                    );
                    return Err(self.refused(client, error).await);
                }
                let user = client.metadata().get("user").cloned().unwrap_or_default();
                if let Some(problem) = self.login_problem(&user) {
                    client.session_extensions().insert(LoginProblem(problem));
                }
                let scram = if client.is_secure() {
                    &self.scram_tls
                } else {
                    &self.scram_plain
                };
                self.driver
                    .begin_authentication(client, scram.create())
                    .await
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                self.driver.advance_authentication(client, message).await
            }
            _ => return Ok(()),
        };
        match outcome {
            Ok(AuthOutcome::InProgress) => Ok(()),
            Ok(AuthOutcome::Authenticated {
                identity: Some(principal),
                final_message,
            }) => {
                let purpose = client
                    .metadata()
                    .get("options")
                    .and_then(|options| purpose_option(options));
                client.session_extensions().insert(Session {
                    principal,
                    purpose: Mutex::new(purpose),
                });
                // Registers the connection for cancel requests (the
                // driver's connection manager) and sends BackendKeyData.
                self.driver
                    .complete_authentication(client, final_message)
                    .await
            }
            Ok(AuthOutcome::Authenticated { identity: None, .. }) => {
                let user = client.metadata().get("user").cloned().unwrap_or_default();
                Err(self
                    .refused(client, PgWireError::InvalidPassword(user))
                    .await)
            }
            Err(e) => Err(self.refused(client, e).await),
        }
    }
}

/// `privet.purpose` from the startup `options` (`-c privet.purpose=X`,
/// `-cprivet.purpose=X` or `--privet.purpose=X`).
pub(super) fn purpose_option(options: &str) -> Option<String> {
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let setting = match word {
            "-c" => words.next(),
            w => w.strip_prefix("-c").or_else(|| w.strip_prefix("--")),
        };
        if let Some((name, value)) = setting.and_then(|s| s.split_once('=')) {
            if name.eq_ignore_ascii_case(PURPOSE_SETTING) && !value.is_empty() {
                return Some(value.to_owned());
            }
        }
    }
    None
}
