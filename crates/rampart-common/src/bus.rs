//! The system bus: connecting, owning a well-known name, and knowing who called.
//!
//! zbus reads `DBUS_SYSTEM_BUS_ADDRESS`, so tests point daemons at a private `dbus-daemon` with no code change.

use zbus::connection::Builder;
use zbus::fdo::{DBusProxy, RequestNameFlags, RequestNameReply};
use zbus::message::Header;
use zbus::names::BusName;
use zbus::Connection;

use crate::Error;

/// Connects to the system bus as a client.
pub async fn connect() -> Result<Connection, Error> {
    Connection::system()
        .await
        .map_err(|e| Error::BusConnect(Box::new(e)))
}

/// Connects, exports `iface` at `path`, then takes `name` — in that order, so no call can arrive before the object
/// exists. Fails if another process owns the name (no queueing: two copies of a daemon is a bug to report).
pub async fn serve<I: zbus::object_server::Interface>(
    name: &str,
    path: &str,
    iface: I,
) -> Result<Connection, Error> {
    serve_on(
        Builder::system().map_err(|e| Error::BusConnect(Box::new(e)))?,
        name,
        path,
        iface,
    )
    .await
}

/// [`serve`] on a bus of the caller's choosing (tests: a private bus by address).
pub async fn serve_on<I: zbus::object_server::Interface>(
    builder: Builder<'_>,
    name: &str,
    path: &str,
    iface: I,
) -> Result<Connection, Error> {
    let conn = builder
        .serve_at(path, iface)
        .map_err(|e| Error::BusConnect(Box::new(e)))?
        .build()
        .await
        .map_err(|e| Error::BusConnect(Box::new(e)))?;
    own(&conn, name).await?;
    Ok(conn)
}

/// Exports `iface` at `path` on an existing connection, then takes `name` (daemons that need the connection before
/// their object exists, e.g. to call other daemons while starting).
pub async fn publish<I: zbus::object_server::Interface>(
    conn: &Connection,
    name: &str,
    path: &str,
    iface: I,
) -> Result<(), Error> {
    conn.object_server()
        .at(path, iface)
        .await
        .map_err(|e| Error::BusConnect(Box::new(e)))?;
    own(conn, name).await
}

/// Takes `name`, without queueing: two copies of a daemon is a bug to report.
async fn own(conn: &Connection, name: &str) -> Result<(), Error> {
    let reply = conn
        .request_name_with_flags(name, RequestNameFlags::DoNotQueue.into())
        .await
        .map_err(|source| match &source {
            zbus::Error::MethodError(err, _, _)
                if err.as_str() == "org.freedesktop.DBus.Error.AccessDenied" =>
            {
                Error::BusPolicy {
                    name: name.to_owned(),
                }
            }
            _ => Error::BusName {
                name: name.to_owned(),
                source: Box::new(source),
            },
        })?;
    if reply != RequestNameReply::PrimaryOwner {
        return Err(Error::BusName {
            name: name.to_owned(),
            source: Box::new(zbus::Error::NameTaken),
        });
    }
    Ok(())
}

/// Who is on the other end of a method call, as the bus daemon vouches for it (never as the caller claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub unique_name: String,
    pub uid: Option<u32>,
    pub pid: Option<u32>,
}

impl Caller {
    /// Asks the bus daemon for the credentials of the message's sender.
    pub async fn of(conn: &Connection, header: &Header<'_>) -> Result<Caller, zbus::Error> {
        let sender = header
            .sender()
            .ok_or_else(|| zbus::Error::Failure("message has no sender".into()))?;
        let creds = DBusProxy::new(conn)
            .await?
            .get_connection_credentials(BusName::Unique(sender.clone()))
            .await?;
        Ok(Caller {
            unique_name: sender.to_string(),
            uid: creds.unix_user_id(),
            pid: creds.process_id(),
        })
    }

    /// The audit log's `peer`/`sender` text: `uid=0 pid=42`.
    pub fn describe(&self) -> String {
        let show = |v: Option<u32>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
        format!("uid={} pid={}", show(self.uid), show(self.pid))
    }
}
