//! rampart-release: the operator's tool for signed releases. Parses arguments, calls the library, prints the
//! error chain once. Exit codes: 0 ok, 1 error (including a repository or bundle that does not verify),
//! 2 usage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rampart_release::build::{self, Inputs};
use rampart_release::repo::{Expiry, Thresholds};
use rampart_release::{bundle, keydir, verify, KeyDir, Repo};
use rampart_update::chunks::DEFAULT_CHUNK_SIZE;
use rampart_update::release::{parse_version, Installed};
use rampart_update::Role;

#[derive(Debug, Parser)]
#[command(
    name = "rampart-release",
    version,
    about = "Build, sign and verify Rampart release repositories"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct ThresholdArgs {
    /// Distinct root keys needed (default: kept, or 1).
    #[arg(long)]
    root_threshold: Option<u32>,
    #[arg(long)]
    targets_threshold: Option<u32>,
    #[arg(long)]
    snapshot_threshold: Option<u32>,
    #[arg(long)]
    timestamp_threshold: Option<u32>,
}

#[derive(Debug, clap::Args)]
struct ExpiryArgs {
    /// How long the new root is valid (e.g. 365d).
    #[arg(long, default_value = "365d", value_parser = humantime::parse_duration)]
    root_expires: Duration,
    #[arg(long, default_value = "90d", value_parser = humantime::parse_duration)]
    targets_expires: Duration,
    #[arg(long, default_value = "90d", value_parser = humantime::parse_duration)]
    snapshot_expires: Duration,
    /// Refresh well before this (a daily timer with the default week).
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    timestamp_expires: Duration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a role key: DIR/<role>-<name>.{cert,key,rev}.asc (secret and revocation mode 0600).
    Keygen {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        name: String,
    },
    /// Create a repository: metadata/1.root.json from the certificates in --keys.
    Init {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        keys: PathBuf,
        #[command(flatten)]
        thresholds: ThresholdArgs,
        #[command(flatten)]
        expiry: ExpiryArgs,
    },
    /// Publish a release built from an image: rootfs (slot image), kernel, initrd.
    Build {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        keys: PathBuf,
        #[arg(long)]
        rootfs: PathBuf,
        #[arg(long)]
        kernel: PathBuf,
        #[arg(long)]
        initrd: PathBuf,
        #[arg(long)]
        version: String,
        /// Oldest installed version this release may update (default: any, 0.0.0).
        #[arg(long, default_value = "0.0.0")]
        min_version: String,
        #[arg(long)]
        variant: String,
        #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE)]
        chunk_size: u64,
        #[arg(long, default_value_t = 19)]
        zstd_level: i32,
        #[command(flatten)]
        expiry: ExpiryArgs,
    },
    /// Root N+1 with the keys in --keys, signed by the current root keys (--old-keys) and the new ones.
    RotateRoot {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        old_keys: PathBuf,
        #[arg(long)]
        keys: PathBuf,
        #[command(flatten)]
        thresholds: ThresholdArgs,
        #[command(flatten)]
        expiry: ExpiryArgs,
    },
    /// Sign a new timestamp for the current snapshot (only the timestamp key is needed).
    RefreshTimestamp {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        keys: PathBuf,
        #[command(flatten)]
        expiry: ExpiryArgs,
    },
    /// Pack every root, the current metadata and the release's targets into one tar for air-gapped machines.
    Bundle {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a repository or bundle as a device would, from a trusted root file.
    Verify {
        #[arg(long)]
        root: PathBuf,
        #[arg(long, conflicts_with = "bundle", required_unless_present = "bundle")]
        repo: Option<PathBuf>,
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Also check installability on a device of this variant running --installed.
        #[arg(long, requires = "installed")]
        variant: Option<String>,
        #[arg(long, requires = "variant")]
        installed: Option<String>,
        /// The device's anti-rollback floor (default: --installed).
        #[arg(long, requires = "installed")]
        rollback_floor: Option<String>,
    },
    /// Print the bytes a metadata file's signatures cover (canonical JSON of `signed`), for sqv or gpg.
    Canonical { file: PathBuf },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::from_name(s).ok_or_else(|| format!("{s:?}: one of root, targets, snapshot, timestamp"))
}

impl From<ThresholdArgs> for Thresholds {
    fn from(a: ThresholdArgs) -> Thresholds {
        Thresholds {
            root: a.root_threshold,
            targets: a.targets_threshold,
            snapshot: a.snapshot_threshold,
            timestamp: a.timestamp_threshold,
        }
    }
}

impl From<ExpiryArgs> for Expiry {
    fn from(a: ExpiryArgs) -> Expiry {
        Expiry {
            root: a.root_expires,
            targets: a.targets_expires,
            snapshot: a.snapshot_expires,
            timestamp: a.timestamp_expires,
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen { out, role, name } => {
            let id = keydir::keygen(&out, role, &name)?;
            println!(
                "{role} key {id}: {}/{role}-{name}.{{cert,key,rev}}.asc",
                out.display()
            );
        }
        Command::Init {
            repo,
            keys,
            thresholds,
            expiry,
        } => {
            Repo::new(&repo).init(&KeyDir::load(&keys)?, thresholds.into(), expiry.into())?;
            println!("created {}/metadata/1.root.json", repo.display());
        }
        Command::Build {
            repo,
            keys,
            rootfs,
            kernel,
            initrd,
            version,
            min_version,
            variant,
            chunk_size,
            zstd_level,
            expiry,
        } => {
            let inputs = Inputs {
                rootfs,
                kernel,
                initrd,
                version,
                min_installed_version: min_version,
                variant,
                chunk_size,
                zstd_level,
            };
            let repo = Repo::new(&repo);
            build::build(&repo, &KeyDir::load(&keys)?, &inputs, expiry.into())?;
            self_check(&repo)?;
        }
        Command::RotateRoot {
            repo,
            old_keys,
            keys,
            thresholds,
            expiry,
        } => {
            let repo = Repo::new(&repo);
            let v = repo.rotate_root(
                &KeyDir::load(&old_keys)?,
                &KeyDir::load(&keys)?,
                thresholds.into(),
                expiry.into(),
            )?;
            println!("root version {v} published");
            if repo.targets()?.is_some() {
                self_check(&repo)?;
            }
        }
        Command::RefreshTimestamp { repo, keys, expiry } => {
            let repo = Repo::new(&repo);
            repo.refresh_timestamp(&[&KeyDir::load(&keys)?], expiry.into())?;
            self_check(&repo)?;
        }
        Command::Bundle { repo, out } => {
            bundle::write(&Repo::new(&repo), &out)?;
            println!("wrote {}", out.display());
        }
        Command::Verify {
            root,
            repo,
            bundle,
            variant,
            installed,
            rollback_floor,
        } => {
            let device = match (variant, installed) {
                (Some(variant), Some(installed)) => {
                    let version = parse_version("installed", &installed)?;
                    let rollback_floor = match rollback_floor {
                        Some(f) => parse_version("rollback floor", &f)?,
                        None => version.clone(),
                    };
                    Some(Installed {
                        variant,
                        version,
                        rollback_floor,
                    })
                }
                _ => None,
            };
            let summary = match (repo, bundle) {
                (Some(dir), _) => verify::repo(&root, &dir, device.as_ref())?,
                (None, Some(file)) => verify::bundle(&root, &file, device.as_ref())?,
                (None, None) => unreachable!("clap requires --repo or --bundle"),
            };
            print_summary(&summary);
        }
        Command::Canonical { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let signed = rampart_update::sign::signed_bytes_of_file(&bytes)?;
            std::io::stdout()
                .write_all(&signed)
                .context("cannot write to stdout")?;
        }
    }
    Ok(())
}

/// After writing, verify the repository from its first root, as a new device would.
fn self_check(repo: &Repo) -> Result<()> {
    let root = repo.metadata_dir().join("1.root.json");
    let summary = verify::repo(&root, &repo.dir, None)
        .context("the repository just written does not verify")?;
    print_summary(&summary);
    Ok(())
}

fn print_summary(s: &verify::Summary) {
    println!(
        "ok: release {} for {} (root v{}, targets v{}, image {} bytes)",
        s.version, s.variant, s.root_version, s.targets_version, s.image_length
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart-release: {e:#}");
            ExitCode::FAILURE
        }
    }
}
