//! Errors every Rampart D-Bus method may return. Names are stable API: callers match on them.

/// A D-Bus error reply from a Rampart daemon. The message says what was wrong and what to do.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.rampart.Error")]
pub enum Error {
    /// Transport-level failure (the bus itself, not the daemon's answer).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller sent something that does not parse or is out of range; nothing was changed.
    InvalidArgument(String),
    /// The caller is not allowed to do this; the denial was audited.
    AccessDenied(String),
    /// The daemon could not do what was asked; nothing was half-applied.
    Failed(String),
}

impl Error {
    /// The short D-Bus error name without the prefix, for logs and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::ZBus(_) => "ZBus",
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::AccessDenied(_) => "AccessDenied",
            Error::Failed(_) => "Failed",
        }
    }
}

/// Extracts the daemon's human message from a proxy call error, falling back to the transport error's text.
pub fn message(err: &zbus::Error) -> String {
    match err {
        zbus::Error::MethodError(name, Some(text), _) => {
            let short = name.as_str().rsplit('.').next().unwrap_or(name.as_str());
            format!("{text} ({short})")
        }
        other => other.to_string(),
    }
}
