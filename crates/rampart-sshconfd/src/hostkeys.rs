//! The machine's SSH host keys (made on first boot under /var by rampart-hostkeys.service), as fingerprints for
//! the console and the panel: an administrator compares them with what `ssh` shows on first connection.

use std::path::Path;

use rampart_interfaces::ssh::HostKey;
use ssh_key::{HashAlg, PublicKey};

use crate::error::Error;

/// Every `*.pub` in `dir`, sorted by algorithm. A file that does not parse is skipped with a warning: one bad
/// file must not hide the other fingerprints.
pub fn read(dir: &Path) -> Result<Vec<HostKey>, Error> {
    let err = |source| Error::HostKeys {
        path: dir.to_owned(),
        source,
    };
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        if path.extension().is_none_or(|e| e != "pub") {
            continue;
        }
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| PublicKey::from_openssh(t.trim()).map_err(|e| e.to_string()));
        match parsed {
            Ok(key) => keys.push(HostKey {
                algorithm: key.algorithm().as_str().to_owned(),
                bits: crate::keys::key_bits(key.key_data()).unwrap_or(0),
                fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
            }),
            Err(e) => log::warn!("skipping host key {}: {e}", path.display()),
        }
    }
    keys.sort_by(|a, b| a.algorithm.cmp(&b.algorithm));
    Ok(keys)
}
