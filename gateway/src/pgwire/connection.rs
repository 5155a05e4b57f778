//! One connection: TLS negotiation, then pgwire's message dispatch in a
//! loop of our own (pgwire's `process_socket` loop, plus the idle limit).
//! Owning the loop means every message is seen here, so idle tracking
//! needs no hook in the statement handlers, and the idle FATAL goes
//! through the connection's own (possibly TLS) stream.

use std::io;

use ::pgwire::api::auth::StartupHandler;
use ::pgwire::api::copy::CopyHandler;
use ::pgwire::api::query::ExtendedQueryHandler;
use ::pgwire::api::{ErrorHandler, PgWireConnectionState};
use ::pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use futures_util::{SinkExt as _, StreamExt as _};

use super::*;

/// As pgwire: a client must finish its startup (TLS and login) in this time.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the idle FATAL may take to write before the socket is dropped.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves one accepted connection until the client leaves, a FATAL error,
/// or the idle limit.
pub(super) async fn serve_connection<H: PgWireServerHandlers>(
    stream: TcpStream,
    front: &Front,
    handlers: &H,
) -> io::Result<()> {
    run(
        stream,
        front,
        handlers.startup_handler(),
        handlers.simple_query_handler(),
        handlers.extended_query_handler(),
        handlers.copy_handler(),
        handlers.cancel_handler(),
        handlers.error_handler(),
    )
    .await
}

#[allow(clippy::too_many_arguments)] // pgwire's handler set, one each
async fn run<A, Q, EQ, CP, CR, E>(
    stream: TcpStream,
    front: &Front,
    startup: Arc<A>,
    simple: Arc<Q>,
    extended: Arc<EQ>,
    copy: Arc<CP>,
    cancel: Arc<CR>,
    errors: Arc<E>,
) -> io::Result<()>
where
    A: StartupHandler,
    Q: SimpleQueryHandler,
    EQ: ExtendedQueryHandler,
    CP: CopyHandler,
    CR: CancelHandler,
    E: ErrorHandler,
{
    let startup_deadline = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_deadline);
    let acceptor = front.tls.as_ref().map(|tls| tls.acceptor.clone());
    let negotiated = tokio::select! {
        () = &mut startup_deadline => return Ok(()),
        negotiated = negotiate_tls::<EQ::Statement>(stream, acceptor) => negotiated?,
    };
    // `None`: direct TLS without an acceptor; nothing sensible to answer.
    let Some(mut socket) = negotiated else {
        return Ok(());
    };
    let mut corked = false;
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let message = if starting {
            tokio::select! {
                () = &mut startup_deadline => None,
                message = socket.next() => message,
            }
        } else {
            // Between messages no statement runs (dispatch below is
            // awaited), so this is exactly the session's idle time.
            match tokio::time::timeout(front.idle_timeout, socket.next()).await {
                Ok(message) => message,
                Err(_) => {
                    tracing::info!(
                        peer = %socket.socket_addr(),
                        idle_secs = front.idle_timeout.as_secs(),
                        "pg: closing an idle connection"
                    );
                    let farewell = fatal(
                        "57P05",
                        "terminating connection due to idle-session timeout".into(),
                    );
                    let info: ErrorInfo = farewell.into();
                    let bye = async {
                        socket
                            .send(PgWireBackendMessage::ErrorResponse(info.into()))
                            .await?;
                        socket.close().await
                    };
                    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, bye).await;
                    return Ok(());
                }
            }
        };
        let Some(Ok(message)) = message else {
            break;
        };
        // The client is leaving; some (asyncpg) wait for the close.
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let is_extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        // A cancel request comes on a connection of its own, closed after.
        let is_cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        // An extended-protocol batch (Parse/Bind/Describe/Execute … Sync)
        // is answered in one segment, as PostgreSQL does: pgwire flushes
        // after each reply message, so the socket is corked until the
        // batch's Sync or Flush (or any other message) has been answered.
        let holds_replies = matches!(
            message,
            PgWireFrontendMessage::Parse(_)
                | PgWireFrontendMessage::Bind(_)
                | PgWireFrontendMessage::Describe(_)
                | PgWireFrontendMessage::Execute(_)
                | PgWireFrontendMessage::Close(_)
        );
        if holds_replies && !corked {
            corked = set_cork(socket.get_ref(), true);
        }
        if let Err(mut e) = process_message(
            message,
            &mut socket,
            Arc::clone(&startup),
            Arc::clone(&simple),
            Arc::clone(&extended),
            Arc::clone(&copy),
            Arc::clone(&cancel),
        )
        .await
        {
            errors.on_error(&socket, &mut e);
            let is_fatal = e.is_fatal();
            process_error(&mut socket, e, is_extended_query).await?;
            if is_fatal {
                break;
            }
        }
        if corked && !holds_replies {
            corked = !set_cork(socket.get_ref(), false);
        }
        if is_cancel_request {
            break;
        }
    }
    Ok(())
}

/// Sets TCP_CORK on the connection's socket: while set, the kernel holds
/// written data until a full segment or until unset (at most 200 ms).
/// Returns whether the call succeeded; a failure only costs segments.
#[cfg(target_os = "linux")]
fn set_cork(stream: &::pgwire::tokio::server::MaybeTls, on: bool) -> bool {
    use ::pgwire::tokio::server::MaybeTls;
    use std::os::fd::AsRawFd as _;
    let fd = match stream {
        MaybeTls::Plain(tcp) => tcp.as_raw_fd(),
        MaybeTls::Tls(tls) => tls.get_ref().0.as_raw_fd(),
        _ => return false,
    };
    let value = libc::c_int::from(on);
    // SAFETY: `fd` is this connection's open socket, borrowed from `stream`
    // for the duration of the call; `value` outlives the call and its size
    // is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            std::ptr::from_ref(&value).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
        )
    };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn set_cork(_stream: &::pgwire::tokio::server::MaybeTls, _on: bool) -> bool {
    false
}
