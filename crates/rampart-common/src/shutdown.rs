//! Graceful shutdown: one future that resolves on the first SIGTERM or SIGINT.

use tokio::signal::unix::{signal, SignalKind};

use crate::Error;

/// Resolves when the process is asked to stop. Create it early (before the daemon is ready) so no signal is lost.
pub fn signal_future() -> Result<impl std::future::Future<Output = &'static str>, Error> {
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
