//! Running nft: JSON in through a private temporary file (`nft -j -f FILE`, one atomic transaction), JSON out of
//! `nft -j list …`. Only ever through rampart_common::exec::Program; only ever about table `inet rampart`.

use std::io::Write;
use std::net::IpAddr;

use rampart_common::exec::Program;
use rampart_interfaces::firewall::{BAN_SET_V4, BAN_SET_V6, TABLE};
use serde_json::{json, Value};

use crate::ruleset::{self, FAMILY};
use crate::Error;

#[derive(Debug, Clone, Copy)]
pub struct Nft {
    program: Program,
}

impl Nft {
    pub fn new(program: Program) -> Nft {
        Nft { program }
    }

    /// Applies `doc` as one transaction: all of it or none of it.
    pub fn apply(&self, doc: &Value) -> Result<(), Error> {
        let mut file = tempfile::NamedTempFile::new().map_err(Error::NftFile)?;
        file.write_all(doc.to_string().as_bytes())
            .and_then(|()| file.flush())
            .map_err(Error::NftFile)?;
        let path = file.path().to_str().ok_or_else(|| {
            Error::NftFile(std::io::Error::other("temporary file path is not UTF-8"))
        })?;
        log::debug!("nft transaction: {doc}");
        self.program
            .run(&["-j", "-f", path], &[])
            .map_err(Error::NftApply)?;
        Ok(())
    }

    /// `nft -j list table inet rampart`; `None` when the table does not exist.
    pub fn list_table(&self) -> Result<Option<Value>, Error> {
        self.list(
            &["-j", "list", "table", FAMILY, TABLE],
            "table inet rampart",
        )
    }

    fn list(&self, args: &[&str], what: &str) -> Result<Option<Value>, Error> {
        match self.program.run(args, &[]) {
            Ok(out) => {
                serde_json::from_slice(&out.stdout)
                    .map(Some)
                    .map_err(|e| Error::NftOutput {
                        what: format!("{what}: {e}"),
                    })
            }
            Err(rampart_common::Error::ExecFailed { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                Ok(None)
            }
            Err(source) => Err(Error::NftList {
                what: what.to_owned(),
                source,
            }),
        }
    }

    /// Current bans, from both ban sets: (address, seconds left).
    pub fn bans(&self) -> Result<Vec<(IpAddr, u64)>, Error> {
        let mut out = Vec::new();
        for set in [BAN_SET_V4, BAN_SET_V6] {
            let what = format!("set {set}");
            if let Some(listing) = self.list(&["-j", "list", "set", FAMILY, TABLE, set], &what)? {
                out.extend(
                    ruleset::ban_elements(&listing).map_err(|e| Error::NftOutput {
                        what: format!("{what}: {e}"),
                    })?,
                );
            }
        }
        Ok(out)
    }
}

fn ban_set(addr: &IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => BAN_SET_V4,
        IpAddr::V6(_) => BAN_SET_V6,
    }
}

fn element(addr: &IpAddr, elem: Value) -> Value {
    json!({"family": FAMILY, "table": TABLE, "name": ban_set(addr), "elem": [elem]})
}

/// Commands that make `addr` banned for exactly `seconds`: add (so it exists), delete, add with the timeout — the
/// kernel keeps an existing element's old timeout on a plain add.
pub fn ban_commands(addr: &IpAddr, seconds: u64) -> Vec<Value> {
    let timed = json!({"elem": {"val": addr.to_string(), "timeout": seconds}});
    vec![
        json!({"add": {"element": element(addr, timed.clone())}}),
        json!({"delete": {"element": element(addr, json!(addr.to_string()))}}),
        json!({"add": {"element": element(addr, timed)}}),
    ]
}

/// Commands that remove any ban of `addr`, banned or not (add first so the delete always has something to
/// delete; nft 1.0.6 has no `destroy`).
pub fn unban_commands(addr: &IpAddr) -> Vec<Value> {
    let timed = json!({"elem": {"val": addr.to_string(), "timeout": 1}});
    vec![
        json!({"add": {"element": element(addr, timed)}}),
        json!({"delete": {"element": element(addr, json!(addr.to_string()))}}),
    ]
}
