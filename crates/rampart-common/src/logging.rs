//! Logging to the journal when there is one, else to stderr. Structured fields travel as `log` key-values: with
//! journald they become journal fields (upper-case names such as `MESSAGE_ID`), on stderr they are appended.

use log::LevelFilter;

use crate::Error;

/// Installs the process-wide logger. `identifier` becomes `SYSLOG_IDENTIFIER`. The level is `info` unless
/// `RAMPART_LOG` says `debug`/`trace`/`warn`/`error`.
pub fn init(identifier: &str) -> Result<(), Error> {
    let level = std::env::var("RAMPART_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(LevelFilter::Info);
    if systemd_journal_logger::connected_to_journal() {
        systemd_journal_logger::JournalLog::new()
            .map_err(Error::Logging)?
            .with_syslog_identifier(identifier.to_owned())
            .install()
            .map_err(|e| Error::Logging(std::io::Error::other(e)))?;
    } else {
        env_logger::Builder::new()
            .filter_level(level)
            .format_target(false)
            .try_init()
            .map_err(|e| Error::Logging(std::io::Error::other(e)))?;
    }
    log::set_max_level(level);
    Ok(())
}
