//! Errors of rampart-guardd, named after the step that failed.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Common(#[from] rampart_common::Error),
    #[error("cannot create the {interface} client on the system bus")]
    Proxy {
        interface: &'static str,
        source: Box<zbus::Error>,
    },
    #[error("the journal reader stopped")]
    ReaderGone,
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
}
