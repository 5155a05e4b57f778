//! Startup and login: user = principal, password = its API key.

use super::*;

/// API keys as passwords: the key must belong to the principal named as user.
pub(super) struct Keys {
    state: Arc<AppState>,
}

impl Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys")
    }
}

#[async_trait]
impl AuthSource<Arc<PrincipalConfig>> for Keys {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        // Keys are stored hashed only; `verify_password` checks them.
        Err(PgWireError::UserError(Box::new(ErrorInfo::new(
            "FATAL".into(),
            "28000".into(),
            "this authentication method is not supported".into(),
        ))))
    }

    async fn verify_password(
        &self,
        login: &LoginInfo,
        presented: &[u8],
    ) -> PgWireResult<Option<Arc<PrincipalConfig>>> {
        let user = login.user().unwrap_or_default();
        std::str::from_utf8(presented)
            .ok()
            .and_then(|key| self.state.gateway.authenticate(key))
            .filter(|principal| principal.spec.name == user)
            .map(Some)
            .ok_or_else(|| PgWireError::InvalidPassword(user.to_owned()))
    }
}

/// Startup: database check, password (API key) authentication, purpose
/// from the startup options.
pub(super) struct Startup {
    state: Arc<AppState>,
    driver: AuthDriver<DefaultServerParameterProvider, Arc<PrincipalConfig>>,
    password: CleartextPasswordAuth<Keys>,
}

impl Startup {
    pub(super) fn new(state: Arc<AppState>) -> Startup {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = SERVER_VERSION.to_owned();
        parameters.is_superuser = false;
        parameters.default_transaction_read_only = true;
        Startup {
            driver: AuthDriver::new(parameters),
            password: CleartextPasswordAuth::new(Arc::new(Keys {
                state: Arc::clone(&state),
            })),
            state,
        }
    }

    /// Audits a refused login (unknown user, wrong key, wrong database), as
    /// HTTP audits unauthenticated requests.
    async fn refused<C: ClientInfo>(&self, client: &C, error: PgWireError) -> PgWireError {
        let refusal = RequestError::new(ErrorCode::Unauthenticated, error.to_string());
        let at = Started::now();
        let handled = Handled::default();
        let _ = record::<()>(
            &self.state,
            client.socket_addr(),
            &self.state.request_ids.next(),
            ENDPOINT_STARTUP,
            at,
            handled,
            Err(refusal),
        )
        .await;
        error
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
                self.driver
                    .begin_authentication(client, self.password.create())
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
