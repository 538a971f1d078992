//! Fuzzes the JWT decoder and verifier: any text as a token must give a
//! refusal or (never, without the key) a verified token, never a panic;
//! a refusal's message never holds a part of the token.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pgward::auth::jwt::{check_claims, decode, eddsa_jwk, Expect, Jwks};

fn jwks() -> &'static Jwks {
    static KEYS: OnceLock<Jwks> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Jwks {
            keys: vec![eddsa_jwk(&pair, "k")],
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    match decode(token) {
        Ok(t) => {
            // Only the key's owner can sign: a verified fuzz input is a bug.
            assert!(jwks().verify(&t).is_err());
            let x = Expect {
                issuer: "i",
                audience: "a",
                now: 1_000,
                skew: 60,
                max_ttl: Some(3600),
            };
            let _ = check_claims(&t.claims, &x);
        }
        Err(e) => {
            // No part of the token long enough to matter is echoed (what
            // an error quotes, the algorithm or the key id, is cut to 16
            // characters; a message's own words hold no 24 characters
            // without a space).
            let message = e.to_string();
            let long = |p: &&str| p.len() >= 24 && !p.contains(char::is_whitespace);
            for part in token.split('.').filter(long) {
                assert!(!message.contains(part));
            }
        }
    }
});
