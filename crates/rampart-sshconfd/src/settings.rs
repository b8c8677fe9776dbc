//! sshconfd's configuration: drop-ins `sshconfd.d/*.toml` (see rampart_common::config), validated into `Settings`.
//! Every path is configurable so that tests run the real sshd against temporary directories.

use std::path::PathBuf;
use std::time::Duration;

use rampart_common::config::{self, Fragment};
use rampart_common::exec::Program;
use serde::Deserialize;

pub const DEFAULT_DATABASE: &str = "/var/lib/rampart-sshconfd/ssh.db";
pub const DEFAULT_CONFIG_DIR: &str = "/var/lib/rampart/sshd_config.d";
pub const DEFAULT_MAIN_CONFIG: &str = "/etc/ssh/sshd_config";
pub const DEFAULT_SSHD: &str = "/usr/sbin/sshd";
pub const DEFAULT_HOST_KEYS: &str = "/var/lib/rampart/ssh";
pub const DEFAULT_KEYS_COMMAND: &str = "/usr/libexec/rampart/rampart-authorized-keys";
pub const DEFAULT_KEYS_USER: &str = "rampart-sshkeys";
pub const DEFAULT_SSH_UNIT: &str = "ssh.service";
pub const DEFAULT_CONFIRM_SECS: u64 = 600;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshFragment {
    pub database: Option<PathBuf>,
    pub config_dir: Option<PathBuf>,
    pub main_config: Option<PathBuf>,
    pub sshd: Option<String>,
    pub host_keys: Option<PathBuf>,
    pub keys_command: Option<String>,
    pub keys_command_user: Option<String>,
    pub keys_command_bus: Option<String>,
    pub ssh_unit: Option<String>,
    pub sshd_pid_file: Option<PathBuf>,
    pub sshd_log_file: Option<PathBuf>,
    pub confirm_seconds: Option<u64>,
}

impl Fragment for SshFragment {
    fn merge(&mut self, o: Self) {
        config::take(&mut self.database, o.database);
        config::take(&mut self.config_dir, o.config_dir);
        config::take(&mut self.main_config, o.main_config);
        config::take(&mut self.sshd, o.sshd);
        config::take(&mut self.host_keys, o.host_keys);
        config::take(&mut self.keys_command, o.keys_command);
        config::take(&mut self.keys_command_user, o.keys_command_user);
        config::take(&mut self.keys_command_bus, o.keys_command_bus);
        config::take(&mut self.ssh_unit, o.ssh_unit);
        config::take(&mut self.sshd_pid_file, o.sshd_pid_file);
        config::take(&mut self.sshd_log_file, o.sshd_log_file);
        config::take(&mut self.confirm_seconds, o.confirm_seconds);
    }
}

/// How sshd is told to re-read its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// `org.freedesktop.systemd1.Manager.ReloadUnit(unit)` (production).
    Systemd(String),
    /// SIGHUP to the PID in this file (tests run sshd outside systemd).
    PidFile(PathBuf),
}

/// Where sshd's log lines are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// The journal, `SYSLOG_IDENTIFIER=sshd` (production).
    Journal,
    /// A file sshd appends to (`sshd -E FILE`, tests), read from its end at start-up.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: PathBuf,
    pub config_dir: PathBuf,
    pub main_config: PathBuf,
    pub sshd: Program,
    pub host_keys: PathBuf,
    pub keys_command: String,
    pub keys_command_user: String,
    pub reload: Reload,
    pub log: LogSource,
    pub confirm_window: Duration,
}

impl TryFrom<SshFragment> for Settings {
    type Error = rampart_common::Error;
    fn try_from(f: SshFragment) -> Result<Self, Self::Error> {
        let invalid = |m: String| rampart_common::Error::ConfigInvalid(m);
        let abs = |name: &str, p: Option<PathBuf>, default: &str| {
            let p = p.unwrap_or_else(|| PathBuf::from(default));
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(invalid(format!(
                    "{name} = {:?} must be an absolute path",
                    p.display()
                )))
            }
        };
        // The path lives as long as the process: settings are loaded once.
        let sshd: &'static str = Box::leak(
            f.sshd
                .unwrap_or_else(|| DEFAULT_SSHD.to_owned())
                .into_boxed_str(),
        );
        let sshd = Program::new(sshd)?;
        let keys_command = f
            .keys_command
            .unwrap_or_else(|| DEFAULT_KEYS_COMMAND.to_owned());
        let bus = f.keys_command_bus.unwrap_or_default();
        for (name, value) in [
            ("keys_command", keys_command.as_str()),
            ("keys_command_bus", bus.as_str()),
        ] {
            if value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '%')
            {
                return Err(invalid(format!(
                    "{name} = {value:?} must not contain spaces, quotes or %"
                )));
            }
        }
        if !keys_command.starts_with('/') {
            return Err(invalid(format!(
                "keys_command = {keys_command:?} must be an absolute path"
            )));
        }
        let keys_command = if bus.is_empty() {
            keys_command
        } else {
            format!("{keys_command} --bus {bus}")
        };
        let keys_command_user = f
            .keys_command_user
            .unwrap_or_else(|| DEFAULT_KEYS_USER.to_owned());
        crate::keys::parse_user(&keys_command_user)
            .map_err(|e| invalid(format!("keys_command_user: {e}")))?;
        let reload = match f.sshd_pid_file {
            Some(p) => Reload::PidFile(abs("sshd_pid_file", Some(p), "")?),
            None => Reload::Systemd(f.ssh_unit.unwrap_or_else(|| DEFAULT_SSH_UNIT.to_owned())),
        };
        let log = match f.sshd_log_file {
            Some(p) => LogSource::File(abs("sshd_log_file", Some(p), "")?),
            None => LogSource::Journal,
        };
        let confirm = f.confirm_seconds.unwrap_or(DEFAULT_CONFIRM_SECS);
        if !(5..=86_400).contains(&confirm) {
            return Err(invalid(format!(
                "confirm_seconds = {confirm} must be 5..=86400"
            )));
        }
        Ok(Settings {
            database: abs("database", f.database, DEFAULT_DATABASE)?,
            config_dir: abs("config_dir", f.config_dir, DEFAULT_CONFIG_DIR)?,
            main_config: abs("main_config", f.main_config, DEFAULT_MAIN_CONFIG)?,
            sshd,
            host_keys: abs("host_keys", f.host_keys, DEFAULT_HOST_KEYS)?,
            keys_command,
            keys_command_user,
            reload,
            log,
            confirm_window: Duration::from_secs(confirm),
        })
    }
}

/// Loads the drop-ins from `roots` (the standard ones when empty) and validates them.
pub fn load(roots: &[PathBuf]) -> Result<Settings, rampart_common::Error> {
    let fragment: SshFragment = if roots.is_empty() {
        config::load("sshconfd")?
    } else {
        config::load_from("sshconfd", roots)?
    };
    Settings::try_from(fragment)
}
