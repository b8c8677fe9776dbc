//! Rebooting into a written update, behind a trait so tests never reboot. Production asks systemd-logind over the
//! bus (`org.freedesktop.login1.Manager.Reboot(false)`: no process, no shell, the same policy check as
//! `systemctl reboot`; root may always).

use std::future::Future;
use std::pin::Pin;

pub type RebootFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

pub trait Reboot: Send + Sync + std::fmt::Debug {
    fn reboot(&self) -> RebootFuture<'_>;
}

/// systemd-logind on the system bus.
#[derive(Debug, Clone)]
pub struct Logind {
    conn: zbus::Connection,
}

impl Logind {
    pub fn new(conn: zbus::Connection) -> Logind {
        Logind { conn }
    }
}

impl Reboot for Logind {
    fn reboot(&self) -> RebootFuture<'_> {
        Box::pin(async move {
            self.conn
                .call_method(
                    Some("org.freedesktop.login1"),
                    "/org/freedesktop/login1",
                    Some("org.freedesktop.login1.Manager"),
                    "Reboot",
                    &(false,),
                )
                .await
                .map(|_| ())
                .map_err(|e| format!("systemd-logind refused Reboot: {e}"))
        })
    }
}
