//! SCRAM-SHA-256 primitives (RFC 5802, RFC 7677) on ring: key derivation and the
//! stored verifier format PostgreSQL uses in pg_authid.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;

use super::AuthError;

/// Iterations used when pgward derives a verifier itself (PostgreSQL's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// The SASL mechanism name.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// The mechanism with channel binding.
pub const MECHANISM_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// HMAC-SHA-256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&k, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// Normalizes a password as PostgreSQL does: SASLprep when it applies, the raw
/// bytes otherwise.
pub fn normalize_password(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(p) => p.into_owned().into_bytes(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

/// PBKDF2-HMAC-SHA-256 of the normalized password.
pub fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    let iterations = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        &normalize_password(password),
        &mut out,
    );
    out
}

/// Fills a buffer with secure random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // SystemRandom only fails if the OS has no entropy source at all.
    SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's random number generator failed");
    out
}

/// A fresh printable nonce.
pub fn nonce() -> String {
    B64.encode(random_bytes::<18>())
}

/// Base64 encoding, as SCRAM uses it.
pub fn b64(data: &[u8]) -> String {
    B64.encode(data)
}

/// Base64 decoding, as SCRAM uses it.
pub fn unb64(data: &str) -> Result<Vec<u8>, AuthError> {
    B64.decode(data)
        .map_err(|_| AuthError::Malformed("invalid base64"))
}

/// What a server stores to check a SCRAM-SHA-256 login without the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// The salt.
    pub salt: Vec<u8>,
    /// SHA-256(ClientKey).
    pub stored_key: [u8; 32],
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(SCRAM-SHA-256, redacted)")
    }
}

impl Verifier {
    /// Derives a verifier from a password, salt and iteration count.
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// Derives a verifier with a fresh random salt.
    pub fn generate(password: &str) -> Self {
        Verifier::from_password(password, &random_bytes::<16>(), DEFAULT_ITERATIONS)
    }

    /// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let rest = text
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(AuthError::BadVerifier("must start with SCRAM-SHA-256$"))?;
        let (params, keys) = rest
            .split_once('$')
            .ok_or(AuthError::BadVerifier("missing '$' before the keys"))?;
        let (iter, salt) = params.split_once(':').ok_or(AuthError::BadVerifier(
            "missing ':' between iterations and salt",
        ))?;
        let (stored, server) = keys
            .split_once(':')
            .ok_or(AuthError::BadVerifier("missing ':' between the keys"))?;
        let iterations: u32 =
            iter.parse()
                .ok()
                .filter(|&i| i > 0)
                .ok_or(AuthError::BadVerifier(
                    "iterations must be a positive integer",
                ))?;
        let salt = B64
            .decode(salt)
            .map_err(|_| AuthError::BadVerifier("salt is not base64"))?;
        let key = |s: &str| -> Result<[u8; 32], AuthError> {
            B64.decode(s)
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
                .ok_or(AuthError::BadVerifier("keys must be 32 bytes of base64"))
        };
        Ok(Verifier {
            iterations,
            salt,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

/// Splits a SCRAM message into its `k=value` attributes.
pub fn attributes(msg: &str) -> impl Iterator<Item = (u8, &str)> {
    msg.split(',').map(|a| {
        let b = a.as_bytes();
        if b.len() >= 2 && b[1] == b'=' {
            (b[0], &a[2..])
        } else {
            (0, a)
        }
    })
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_round_trips() {
        let v = Verifier::from_password("pencil", b"0123456789abcdef", 4096);
        let text = v.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$"));
        assert_eq!(Verifier::parse(&text).unwrap(), v);
        assert_ne!(Verifier::from_password("pencil2", &v.salt, 4096), v);
    }

    #[test]
    fn rejects_bad_verifiers() {
        for bad in [
            "md5abc",
            "SCRAM-SHA-256$0:c2FsdA==$AA==:AA==",
            "SCRAM-SHA-256$4096:c2FsdA==$AA==:AA==",
            "SCRAM-SHA-256$4096c2FsdA==",
        ] {
            assert!(Verifier::parse(bad).is_err(), "{bad}");
        }
    }
}
