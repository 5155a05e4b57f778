//! The bounded connection pool both backends share: at most `size`
//! connections in use, a bounded wait for one, idle connections reused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::BackendError;

/// Idle connections of type `C` and the permits that bound their use.
pub(crate) struct Pool<C> {
    idle: Mutex<Vec<C>>,
    permits: Arc<Semaphore>,
    size: usize,
    wait: Duration,
}

impl<C> Pool<C> {
    pub(crate) fn new(size: usize, wait: Duration) -> Pool<C> {
        let size = size.max(1);
        Pool {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
            size,
            wait,
        }
    }

    /// A permit to use one connection, waiting at most the configured time:
    /// past it the request is refused ([`BackendError::Busy`]) rather than
    /// queued without bound.
    pub(crate) async fn permit(&self) -> Result<OwnedSemaphorePermit, BackendError> {
        tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| BackendError::Busy {
                pool_size: self.size,
                waited_ms: self.wait.as_millis(),
            })?
            .map_err(|_| BackendError::Internal {
                message: "connection pool closed".into(),
            })
    }

    /// An idle connection, if any (the caller opens one otherwise).
    pub(crate) fn take_idle(&self) -> Option<C> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Returns a healthy connection for reuse.
    pub(crate) fn release(&self, conn: C) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }

    /// Drops every idle connection (they are reopened on demand).
    pub(crate) fn clear_idle(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
