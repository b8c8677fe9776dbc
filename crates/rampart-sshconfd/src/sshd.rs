//! Putting a new drop-in in front of sshd: validate, then install, then reload — or change nothing.
//!
//! 1. The candidate is written to `.50-rampart.conf.new` in the drop-in directory (not matched by sshd's
//!    `*.conf` include) and fsynced.
//! 2. `sshd -t -f .validate` checks it in context: `.validate` includes the candidate first, then the real main
//!    config — the same order as at run time, so the candidate's values win exactly as they will. (The main config
//!    also includes the *current* drop-in; its cumulative `ListenAddress` lines add to the check, never hide a
//!    fault.) A refusal removes the candidate and changes nothing.
//! 3. rename over `50-rampart.conf`, fsync the directory, reload sshd. If the reload fails the previous file is put
//!    back and sshd reloaded again, so the running configuration and the file stay the same.

use std::io::Write;
use std::path::{Path, PathBuf};

use zbus::Connection;

use crate::error::Error;
use crate::settings::{Reload, Settings};

pub const FILE: &str = "50-rampart.conf";
const CANDIDATE: &str = ".50-rampart.conf.new";
const VALIDATE: &str = ".validate";
/// How long a systemd reload job may take.
const RELOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Sshd {
    settings: Settings,
}

impl Sshd {
    pub fn new(settings: Settings) -> Sshd {
        Sshd { settings }
    }

    pub fn path(&self) -> PathBuf {
        self.settings.config_dir.join(FILE)
    }

    /// The installed drop-in, if any.
    pub fn current(&self) -> Result<Option<String>, Error> {
        match std::fs::read_to_string(self.path()) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::WriteConfig {
                path: self.path(),
                source,
            }),
        }
    }

    /// Validates and installs `text` and reloads sshd; nothing happens when it is already installed.
    pub async fn apply(&self, conn: &Connection, text: &str) -> Result<(), Error> {
        let previous = self.current()?;
        if previous.as_deref() == Some(text) {
            return Ok(());
        }
        tokio::task::block_in_place(|| self.install(text))?;
        if let Err(e) = self.reload(conn).await {
            log::error!("reload after installing the new sshd drop-in failed; putting the previous one back: {e}");
            let restored = tokio::task::block_in_place(|| match &previous {
                Some(old) => self.install_unchecked(old),
                None => std::fs::remove_file(self.path()).map_err(|source| Error::WriteConfig {
                    path: self.path(),
                    source,
                }),
            });
            if let Err(r) = restored {
                log::error!(
                    "could not put the previous sshd drop-in back: {}",
                    rampart_common::error::chain(&r)
                );
            } else if let Err(r) = self.reload(conn).await {
                log::error!("reload with the previous drop-in failed too: {r}");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Steps 1–3 without the reload (blocking).
    pub fn install(&self, text: &str) -> Result<(), Error> {
        let dir = &self.settings.config_dir;
        std::fs::create_dir_all(dir).map_err(|source| Error::WriteConfig {
            path: dir.clone(),
            source,
        })?;
        let candidate = dir.join(CANDIDATE);
        write_synced(&candidate, text)?;
        let result = self.validate(&candidate);
        if result.is_err() {
            let _ = std::fs::remove_file(&candidate);
            return result;
        }
        self.rename_into_place(&candidate)
    }

    fn install_unchecked(&self, text: &str) -> Result<(), Error> {
        let candidate = self.settings.config_dir.join(CANDIDATE);
        write_synced(&candidate, text)?;
        self.rename_into_place(&candidate)
    }

    fn rename_into_place(&self, candidate: &Path) -> Result<(), Error> {
        let path = self.path();
        std::fs::rename(candidate, &path).map_err(|source| Error::WriteConfig {
            path: path.clone(),
            source,
        })?;
        std::fs::File::open(&self.settings.config_dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| Error::WriteConfig {
                path: self.settings.config_dir.clone(),
                source,
            })
    }

    fn validate(&self, candidate: &Path) -> Result<(), Error> {
        let wrapper = self.settings.config_dir.join(VALIDATE);
        write_synced(
            &wrapper,
            &format!(
                "# rampart-sshconfd: checks {} in front of the main configuration\nInclude {}\nInclude {}\n",
                FILE,
                candidate.display(),
                self.settings.main_config.display()
            ),
        )?;
        let file = format!("-f{}", wrapper.display());
        let result = self.settings.sshd.run(&["-t", &file], &[]);
        let _ = std::fs::remove_file(&wrapper);
        match result {
            Ok(_) => Ok(()),
            Err(rampart_common::Error::ExecFailed { stderr, .. }) => {
                Err(Error::Validate { stderr })
            }
            Err(e) => Err(Error::Validate {
                stderr: rampart_common::error::chain(&e),
            }),
        }
    }

    /// Asks sshd to re-read its configuration.
    pub async fn reload(&self, conn: &Connection) -> Result<(), Error> {
        match &self.settings.reload {
            Reload::PidFile(path) => {
                let text = match std::fs::read_to_string(path) {
                    // sshd not running reads the file when it starts.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    other => other.map_err(|e| {
                        Error::Reload(format!(
                            "cannot read sshd's PID file {}: {e}",
                            path.display()
                        ))
                    })?,
                };
                let pid: i32 = text.trim().parse().map_err(|_| {
                    Error::Reload(format!("{} does not hold a PID", path.display()))
                })?;
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGHUP,
                )
                .map_err(|e| Error::Reload(format!("cannot signal sshd (PID {pid}): {e}")))
            }
            Reload::Systemd(unit) => reload_unit(conn, unit).await,
        }
    }
}

fn write_synced(path: &Path, text: &str) -> Result<(), Error> {
    let err = |source| Error::WriteConfig {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::File::create(path).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

/// `ReloadUnit(unit, "replace")` and wait for the job to finish; allowed to uid 0 without polkit. A unit that is
/// not running is left alone: it reads the new file when it starts. (Asking for a reload then would also queue
/// behind ssh.service's start job, which is ordered after this daemon: a deadlock at boot.)
async fn reload_unit(conn: &Connection, unit: &str) -> Result<(), Error> {
    use futures_lite::StreamExt;
    let fail = |e: zbus::Error| Error::Reload(format!("systemd refused to reload {unit}: {e}"));
    let manager = zbus::Proxy::new(
        conn,
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
    )
    .await
    .map_err(fail)?;
    let path: zbus::zvariant::OwnedObjectPath = match manager.call("GetUnit", &(unit,)).await {
        Ok(path) => path,
        Err(zbus::Error::MethodError(name, _, _)) if name.as_str().ends_with("NoSuchUnit") => {
            return Ok(())
        }
        Err(e) => return Err(fail(e)),
    };
    let unit_proxy = zbus::Proxy::new(
        conn,
        "org.freedesktop.systemd1",
        path,
        "org.freedesktop.systemd1.Unit",
    )
    .await
    .map_err(fail)?;
    let state: String = unit_proxy.get_property("ActiveState").await.map_err(fail)?;
    if state != "active" && state != "reloading" {
        log::info!("{unit} is {state}: it reads the new configuration when it starts");
        return Ok(());
    }
    let mut removed = manager.receive_signal("JobRemoved").await.map_err(fail)?;
    manager.call_method("Subscribe", &()).await.map_err(fail)?;
    let job: zbus::zvariant::OwnedObjectPath = manager
        .call("ReloadUnit", &(unit, "replace"))
        .await
        .map_err(fail)?;
    let wait = async {
        while let Some(msg) = removed.next().await {
            let Ok((_, path, _, result)) =
                msg.body()
                    .deserialize::<(u32, zbus::zvariant::OwnedObjectPath, String, String)>()
            else {
                continue;
            };
            if path == job {
                return if result == "done" {
                    Ok(())
                } else {
                    Err(Error::Reload(format!(
                        "reloading {unit} ended with \"{result}\"; see `journalctl -u {unit}`"
                    )))
                };
            }
        }
        Err(Error::Reload(
            "the bus connection closed while waiting for systemd".to_owned(),
        ))
    };
    let outcome = tokio::time::timeout(RELOAD_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Reload(format!(
                "systemd did not finish reloading {unit} in time"
            )))
        });
    let _ = manager.call_method("Unsubscribe", &()).await;
    outcome
}
