//! Errors of rampart-firewalld, named after the step that failed.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Common(#[from] rampart_common::Error),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("cannot write the nft transaction file")]
    NftFile(#[source] std::io::Error),
    #[error("nft refused the transaction; nothing was changed")]
    NftApply(#[source] rampart_common::Error),
    #[error("cannot list {what} with nft")]
    NftList {
        what: String,
        #[source]
        source: rampart_common::Error,
    },
    #[error("nft printed JSON this program does not understand ({what}); is nft the expected version (1.0.x)?")]
    NftOutput { what: String },
    #[error("firewall database: cannot {step}")]
    Db {
        step: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the database holds a value this program cannot read ({0}); restore it from a snapshot"
    )]
    DbValue(String),
    #[error("{0}")]
    Refused(String),
    #[error("cannot start a worker thread")]
    Thread(#[source] std::io::Error),
}
