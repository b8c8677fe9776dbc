//! `sd_notify`: readiness, status lines, and a watchdog that is fed only while the daemon says it is healthy.
//! Outside systemd (tests, a shell) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd the daemon is ready, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Updates the one-line status `systemctl status` shows.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Tells systemd the daemon is stopping.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        log::debug!("sd_notify failed: {e}");
    }
}

/// The watchdog interval systemd asked for (`WatchdogSec=`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec))
}

/// Feeds the watchdog at half its interval for as long as `healthy()` returns true. When it returns false the
/// pings stop and systemd restarts the daemon: a wedged worker is not hidden by a live main loop.
pub fn spawn_watchdog(
    healthy: impl Fn() -> bool + Send + 'static,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = watchdog_interval()? / 2;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            if healthy() {
                send(&[NotifyState::Watchdog]);
            } else {
                log::error!("health check failed; no longer feeding the watchdog");
                return;
            }
        }
    }))
}

/// The end of every daemon's `main`: on error, the whole cause chain once to the log and to systemd's status line,
/// then a failing exit code (so `Restart=on-failure` and `systemctl status` both see it).
pub fn exit_code<E: std::error::Error>(result: Result<(), E>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let text = crate::error::chain(&e);
            log::error!("{text}");
            status(&format!("failed: {text}"));
            std::process::ExitCode::FAILURE
        }
    }
}
