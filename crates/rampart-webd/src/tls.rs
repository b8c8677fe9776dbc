//! The panel's TLS: a certificate made on first boot (never in the image), and the server configuration.
//!
//! **Certificate.** ECDSA P-256, self-signed, for the machine's host name; written as `key.pem` (0600) and
//! `cert.pem` into the state directory by `rampart-webd make-cert` (a oneshot that runs before the console shows
//! the fingerprint). Nobody else vouches for it: the administrator compares the SHA-256 fingerprint the console
//! shows with what the browser shows. Replacing it with a CA-issued certificate is writing those two files.
//!
//! **Protocols.** TLS 1.3 and 1.2 only; rustls implements only AEAD suites (AES-GCM, ChaCha20-Poly1305) with
//! ECDHE, so there is nothing weaker to switch off. The server's suite order is preferred. ALPN offers
//! `http/1.1` only.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::error::Error;

pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";
/// The end of validity (Unix seconds) of a certificate `make-cert` made.
pub const NOT_AFTER_FILE: &str = "cert.not-after";
/// Validity of the first-boot certificate. Browsers cap publicly trusted certificates at 398 days; for a
/// self-signed one the limit is moot, but a bounded life keeps `make-cert` renewal exercised.
pub const VALID_DAYS: i64 = 397;
/// `make-cert` renews a certificate this close to its end (scanners such as testssl.sh call 60 days a problem).
pub const RENEW_DAYS: i64 = 60;

/// Makes `cert.pem`/`key.pem` in `dir` unless a valid certificate is there; returns its SHA-256 fingerprint.
pub fn ensure_cert(dir: &Path, names: &[String]) -> Result<String, Error> {
    let cert_path = dir.join(CERT_FILE);
    if let Ok(pem) = std::fs::read(&cert_path) {
        if let Ok(cert) = CertificateDer::from_pem_slice(&pem) {
            if !expiring(dir) {
                return Ok(fingerprint(&cert));
            }
            log::warn!("the panel certificate ends within {RENEW_DAYS} days; making a new one");
        }
    }
    let mut params =
        rcgen::CertificateParams::new(names.to_vec()).map_err(|e| Error::Cert(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        names.first().cloned().unwrap_or_else(|| "rampart".into()),
    );
    dn.push(
        rcgen::DnType::OrganizationName,
        "Rampart appliance (self-signed)",
    );
    params.distinguished_name = dn;
    let now = std::time::SystemTime::now();
    let end = now + std::time::Duration::from_secs(VALID_DAYS as u64 * 86_400);
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = end.into();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::Cert(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| Error::Cert(e.to_string()))?;
    write_private(&dir.join(KEY_FILE), key.serialize_pem().as_bytes())?;
    write_private(&cert_path, cert.pem().as_bytes())?;
    let end_secs = end
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    write_private(&dir.join(NOT_AFTER_FILE), end_secs.to_string().as_bytes())?;
    Ok(fingerprint(cert.der()))
}

/// Whether a certificate this daemon made ends within [`RENEW_DAYS`]. Its end is kept beside it in
/// [`NOT_AFTER_FILE`]; a certificate without that file was put there by the administrator and is never replaced.
fn expiring(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(NOT_AFTER_FILE)) else {
        return false;
    };
    let Ok(end) = text.trim().parse::<u64>() else {
        return true;
    };
    end < rampart_common::clock::now() + RENEW_DAYS as u64 * 86_400
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let err = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// `SHA256:AB:CD:…`, the form browsers show.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let hex: Vec<String> = Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    hex.join(":")
}

/// The fingerprint of the certificate in `dir` (the console shows it).
pub fn fingerprint_of(dir: &Path) -> Result<String, Error> {
    let path = dir.join(CERT_FILE);
    let pem = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let cert = CertificateDer::from_pem_slice(&pem)
        .map_err(|e| Error::Cert(format!("{}: {e}", path.display())))?;
    Ok(fingerprint(&cert))
}

/// The rustls server configuration from the files in `dir`.
pub fn server_config(dir: &Path) -> Result<Arc<ServerConfig>, Error> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| Error::Cert(format!("{}: {e}", cert_path.display())))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| Error::Cert(format!("{}: {e}", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Cert(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::Cert(format!(
                "the certificate and key in {} do not go together: {e}",
                dir.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Our suite order, not the client's: the strongest suite both sides have.
    config.ignore_client_order = true;
    // No TLS 1.3 session tickets: a panel gains nothing from resumption, and tickets sent after the handshake
    // race clients that hang up at once (testssl.sh reported that as a failed check).
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_cert_once_and_serves_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_cert(dir.path(), &["box.example".into()]).unwrap();
        let b = ensure_cert(dir.path(), &["box.example".into()]).unwrap();
        assert_eq!(a, b, "an existing valid certificate is kept");
        assert_eq!(a.len(), 32 * 3 - 1);
        assert_eq!(fingerprint_of(dir.path()).unwrap(), a);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        server_config(dir.path()).unwrap();
    }

    #[test]
    fn only_our_own_expiring_cert_is_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_cert(dir.path(), &["box".into()]).unwrap();
        std::fs::write(dir.path().join(NOT_AFTER_FILE), "1000").unwrap();
        let b = ensure_cert(dir.path(), &["box".into()]).unwrap();
        assert_ne!(a, b, "ends soon: renewed");
        std::fs::remove_file(dir.path().join(NOT_AFTER_FILE)).unwrap();
        assert_eq!(
            ensure_cert(dir.path(), &["box".into()]).unwrap(),
            b,
            "the administrator's: kept"
        );
    }

    #[test]
    fn a_broken_cert_is_replaced_and_a_missing_key_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CERT_FILE), "not a certificate").unwrap();
        ensure_cert(dir.path(), &["box".into()]).unwrap();
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let e = server_config(dir.path()).unwrap_err().to_string();
        assert!(e.contains("key.pem"), "{e}");
    }
}
