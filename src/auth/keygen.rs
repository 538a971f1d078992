//! `pgward token keygen` and `pgward token issue`: pgward's own Ed25519
//! signing key, written as PEM (PKCS#8) readable by its owner only, and
//! tokens signed with it for CI jobs and setups without an identity
//! provider. Verified by the same path as any issuer's tokens.

use std::io::Write;
use std::path::Path;

use base64::Engine;

use crate::config::auth::{kid_of, SigningKey};

/// Writes a new Ed25519 key to `path` (never over an existing file);
/// returns its key id.
pub fn keygen(path: &Path) -> Result<String, String> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| "the system's random number generator failed".to_string())?;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| "the new key does not read back".to_string())?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(pem.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(kid_of(&pair))
}

/// A token for `subject` with `roles`, valid for `ttl_s` seconds from `now`.
pub fn issue(
    key: &SigningKey,
    issuer: &str,
    audience: &str,
    subject: &str,
    roles: &[String],
    now: u64,
    ttl_s: u64,
) -> String {
    let claims = crate::auth::token::own_claims(issuer, audience, subject, roles, now, ttl_s);
    crate::auth::jwt::sign_eddsa(&key.pair, &key.kid, &claims)
}
