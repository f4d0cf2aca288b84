//! Stopping: the [`ShutdownHandle`], the signals that start a shutdown, and the flag
//! every task watches.

use std::future::Future;

use tokio::sync::watch;

use crate::error::{Error, Result};

/// Asks a running server to shut down gracefully. Cloneable; any clone will do.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    pub(crate) tx: watch::Sender<bool>,
}

impl ShutdownHandle {
    /// Starts the graceful shutdown: stop accepting, finish in-flight requests and
    /// handler runs (up to the grace period), flush the journal.
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }
}

/// A future that completes on SIGTERM or Ctrl-C. The handlers are installed now, so
/// a signal that arrives before the future is polled is not lost.
pub(crate) fn shutdown_signal() -> Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::io)?;
    Ok(async move {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    })
}

/// Completes once the shutdown flag is set (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
