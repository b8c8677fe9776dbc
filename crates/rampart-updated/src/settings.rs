//! updated's configuration: drop-ins `updated.d/*.toml` (see rampart_common::config), validated into
//! [`Settings`]. Every path is configurable so the daemon runs in tests against a tempdir ESP, regular files as
//! slot devices and a fake `/proc`.

use std::path::PathBuf;

use rampart_common::config::{self, Fragment};
use serde::Deserialize;

use crate::https_source::HttpsUrl;
use crate::slot::{PartUuid, Slots, BY_PARTUUID, IMAGE_ROOT_A, IMAGE_ROOT_B};

pub const DEFAULT_VARIANT: &str = "x86_64";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/rampart/updated";
pub const DEFAULT_VAR_LIB: &str = "/var/lib/rampart";
pub const DEFAULT_SNAPSHOT_DIR: &str = "/var/lib/rampart/snapshots";
pub const DEFAULT_ESP: &str = "/efi";
pub const DEFAULT_TRUSTED_ROOT: &str = "/usr/share/rampart/update/root.json";
pub const DEFAULT_PROC: &str = "/proc";
pub const DEFAULT_SYNC_EVERY: usize = 16;
pub const DEFAULT_MIN_PROGRESS_SECS: u64 = 60;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatedFragment {
    pub source: Option<String>,
    pub tls_ca_file: Option<PathBuf>,
    pub min_progress_seconds: Option<u64>,
    pub variant: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub var_lib: Option<PathBuf>,
    pub snapshot_dir: Option<PathBuf>,
    pub esp: Option<PathBuf>,
    pub root_a_partuuid: Option<String>,
    pub root_b_partuuid: Option<String>,
    pub device_dir: Option<PathBuf>,
    pub trusted_root: Option<PathBuf>,
    pub maintenance_window: Option<String>,
    pub proc: Option<PathBuf>,
    pub kernel_options: Option<String>,
    pub sync_every_chunks: Option<usize>,
    pub boot_tries: Option<u32>,
}

impl Fragment for UpdatedFragment {
    fn merge(&mut self, o: Self) {
        config::take(&mut self.source, o.source);
        config::take(&mut self.tls_ca_file, o.tls_ca_file);
        config::take(&mut self.min_progress_seconds, o.min_progress_seconds);
        config::take(&mut self.variant, o.variant);
        config::take(&mut self.state_dir, o.state_dir);
        config::take(&mut self.var_lib, o.var_lib);
        config::take(&mut self.snapshot_dir, o.snapshot_dir);
        config::take(&mut self.esp, o.esp);
        config::take(&mut self.root_a_partuuid, o.root_a_partuuid);
        config::take(&mut self.root_b_partuuid, o.root_b_partuuid);
        config::take(&mut self.device_dir, o.device_dir);
        config::take(&mut self.trusted_root, o.trusted_root);
        config::take(&mut self.maintenance_window, o.maintenance_window);
        config::take(&mut self.proc, o.proc);
        config::take(&mut self.kernel_options, o.kernel_options);
        config::take(&mut self.sync_every_chunks, o.sync_every_chunks);
        config::take(&mut self.boot_tries, o.boot_tries);
    }
}

/// `HH:MM-HH:MM` in UTC; the end may be before the start (a window across midnight); `00:00-24:00` is any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: u32,
    end: u32,
}

impl Window {
    pub fn parse(text: &str) -> Result<Window, String> {
        let minute = |t: &str| -> Option<u32> {
            let (h, m) = t.split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60 && t.len() == 5).then_some(h * 60 + m)
        };
        let bad = || {
            format!("maintenance_window = {text:?} must be HH:MM-HH:MM (UTC), e.g. \"02:00-04:00\"")
        };
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let end = if b == "24:00" { Some(1440) } else { minute(b) };
        let (start, end) = (minute(a).ok_or_else(bad)?, end.ok_or_else(bad)?);
        if start == end {
            return Err(format!("maintenance_window = {text:?} is empty"));
        }
        Ok(Window { start, end })
    }

    /// Whether Unix time `now` (UTC) lies inside the window.
    pub fn contains(&self, now: u64) -> bool {
        let m = u32::try_from(now / 60 % 1440).unwrap_or(0);
        if self.start < self.end {
            (self.start..self.end).contains(&m)
        } else {
            m >= self.start || m < self.end
        }
    }
}

/// Where releases come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A repository directory or an offline bundle file (which one is decided when it is used: the medium may
    /// be plugged in later).
    Local(PathBuf),
    /// A repository served over HTTPS, its server certificate checked against `ca` only.
    Https { url: HttpsUrl, ca: PathBuf },
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::Local(p) => write!(f, "{}", p.display()),
            SourceSpec::Https { url, .. } => {
                write!(f, "https://{}:{}{}", url.host, url.port, url.prefix)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// None: nothing to check against.
    pub source: Option<SourceSpec>,
    /// An HTTPS step (connect, handshake, response, each body read) that makes no progress this long fails.
    pub min_progress: std::time::Duration,
    pub variant: String,
    pub state_dir: PathBuf,
    pub var_lib: PathBuf,
    pub snapshot_dir: PathBuf,
    pub esp: PathBuf,
    pub slots: Slots,
    pub trusted_root: PathBuf,
    /// Reboot into a written update only inside it (unless `Apply(reboot_now)`); None: never on its own.
    pub window: Option<Window>,
    pub proc: PathBuf,
    pub kernel_options: Option<String>,
    pub sync_every: usize,
    pub boot_tries: u32,
}

impl Settings {
    /// Where an offline bundle is unpacked (inside the state directory, which snapshots skip).
    pub fn staging_dir(&self) -> PathBuf {
        self.state_dir.join("bundle")
    }

    pub fn engine_config(&self) -> crate::Config {
        crate::Config {
            slots: self.slots.clone(),
            esp: self.esp.clone(),
            state_dir: self.state_dir.clone(),
            var_lib: self.var_lib.clone(),
            snapshot_dir: self.snapshot_dir.clone(),
            sync_every: self.sync_every,
            kernel_options: self.kernel_options.clone(),
            boot_tries: self.boot_tries,
        }
    }
}

impl TryFrom<UpdatedFragment> for Settings {
    type Error = rampart_common::Error;
    fn try_from(f: UpdatedFragment) -> Result<Self, Self::Error> {
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
        let source = match f.source {
            None => None,
            Some(text) if text.contains("://") => {
                let url = HttpsUrl::parse(&text).map_err(invalid)?;
                let ca = f.tls_ca_file.ok_or_else(|| {
                    invalid(format!(
                        "source = {text:?} needs tls_ca_file = (the PEM CA certificates the release server's \
                         certificate must chain to; system roots are not used)"
                    ))
                })?;
                Some(SourceSpec::Https {
                    url,
                    ca: abs("tls_ca_file", Some(ca), "")?,
                })
            }
            Some(p) => Some(SourceSpec::Local(abs("source", Some(p.into()), "")?)),
        };
        let min_progress = f.min_progress_seconds.unwrap_or(DEFAULT_MIN_PROGRESS_SECS);
        if !(1..=3600).contains(&min_progress) {
            return Err(invalid(format!(
                "min_progress_seconds = {min_progress} must be 1..=3600"
            )));
        }
        let uuid = |name: &str, v: Option<String>, default: &str| {
            PartUuid::parse(v.as_deref().unwrap_or(default))
                .map_err(|e| invalid(format!("{name}: {e}")))
        };
        let slots = Slots::new(
            uuid("root_a_partuuid", f.root_a_partuuid, IMAGE_ROOT_A)?,
            uuid("root_b_partuuid", f.root_b_partuuid, IMAGE_ROOT_B)?,
            abs("device_dir", f.device_dir, BY_PARTUUID)?,
        )
        .map_err(|e| invalid(e.to_string()))?;
        let variant = f.variant.unwrap_or_else(|| DEFAULT_VARIANT.to_owned());
        if variant.is_empty()
            || !variant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(invalid(format!(
                "variant = {variant:?} must be like \"x86_64\""
            )));
        }
        let sync_every = f.sync_every_chunks.unwrap_or(DEFAULT_SYNC_EVERY);
        if !(1..=1024).contains(&sync_every) {
            return Err(invalid(format!(
                "sync_every_chunks = {sync_every} must be 1..=1024"
            )));
        }
        let boot_tries = f.boot_tries.unwrap_or(crate::boot::TRIES);
        if !(1..=9).contains(&boot_tries) {
            return Err(invalid(format!("boot_tries = {boot_tries} must be 1..=9")));
        }
        Ok(Settings {
            source,
            min_progress: std::time::Duration::from_secs(min_progress),
            variant,
            state_dir: abs("state_dir", f.state_dir, DEFAULT_STATE_DIR)?,
            var_lib: abs("var_lib", f.var_lib, DEFAULT_VAR_LIB)?,
            snapshot_dir: abs("snapshot_dir", f.snapshot_dir, DEFAULT_SNAPSHOT_DIR)?,
            esp: abs("esp", f.esp, DEFAULT_ESP)?,
            slots,
            trusted_root: abs("trusted_root", f.trusted_root, DEFAULT_TRUSTED_ROOT)?,
            window: f
                .maintenance_window
                .as_deref()
                .map(Window::parse)
                .transpose()
                .map_err(invalid)?,
            proc: abs("proc", f.proc, DEFAULT_PROC)?,
            kernel_options: f.kernel_options,
            sync_every,
            boot_tries,
        })
    }
}

/// Loads the drop-ins from `roots` (the standard ones when empty) and validates them.
pub fn load(roots: &[PathBuf]) -> Result<Settings, rampart_common::Error> {
    let fragment: UpdatedFragment = if roots.is_empty() {
        config::load("updated")?
    } else {
        config::load_from("updated", roots)?
    };
    Settings::try_from(fragment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_wrap_midnight() {
        let w = Window::parse("02:00-04:00").unwrap();
        assert!(w.contains(2 * 3600) && w.contains(4 * 3600 - 1) && !w.contains(4 * 3600));
        let night = Window::parse("23:30-01:00").unwrap();
        assert!(
            night.contains(86_400 + 23 * 3600 + 1800)
                && night.contains(1800)
                && !night.contains(3600)
        );
        for bad in [
            "2:00-4:00",
            "02:00",
            "25:00-01:00",
            "02:00-02:00",
            "24:00-02:00",
            "00:00-24:01",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
        let always = Window::parse("00:00-24:00").unwrap();
        assert!((0..1440).all(|m| always.contains(86_400 * 7 + m * 60 + 59)));
        let evening = Window::parse("23:00-24:00").unwrap();
        assert!(
            evening.contains(23 * 3600)
                && !evening.contains(86_400)
                && !evening.contains(22 * 3600)
        );
    }

    #[test]
    fn boot_tries_default_to_three_and_are_bounded() {
        assert_eq!(
            Settings::try_from(UpdatedFragment::default())
                .unwrap()
                .boot_tries,
            3
        );
        for (tries, ok) in [(1, true), (9, true), (0, false), (10, false)] {
            let f = UpdatedFragment {
                boot_tries: Some(tries),
                ..UpdatedFragment::default()
            };
            assert_eq!(Settings::try_from(f).is_ok(), ok, "{tries}");
        }
    }

    #[test]
    fn the_shipped_defaults_parse_to_the_built_in_ones() {
        let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../units/config");
        let s = load(&[units]).unwrap();
        assert_eq!(s.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert!(s.source.is_none() && s.window.is_none());
    }

    #[test]
    fn https_sources_need_a_ca_file() {
        let f = UpdatedFragment {
            source: Some("https://updates.example/repo".into()),
            ..UpdatedFragment::default()
        };
        let err = Settings::try_from(f).unwrap_err().to_string();
        assert!(err.contains("needs tls_ca_file"), "{err}");
        let f = UpdatedFragment {
            source: Some("https://updates.example/repo".into()),
            tls_ca_file: Some("/etc/rampart/update-ca.pem".into()),
            ..UpdatedFragment::default()
        };
        let s = Settings::try_from(f).unwrap();
        assert_eq!(
            s.source.unwrap().to_string(),
            "https://updates.example:443/repo/"
        );
        let ok = Settings::try_from(UpdatedFragment::default()).unwrap();
        assert_eq!(ok.slots, Slots::image());
    }
}
