//! JSON Web Tokens as agents present them (compact JWS): decoding, the
//! signature checked with ring against a JSON Web Key (RS256, ES256,
//! EdDSA only), and the registered claims checked (iss, aud, exp, nbf).
//! Pure logic: keys come from the caller. No error ever carries the
//! token's text.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The longest token accepted (a password message is far larger).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A signature algorithm pgward accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048 to 8192-bit keys).
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// Reads the header's `alg`; `none`, HMAC and everything else is refused.
    fn parse(alg: &str) -> Result<Alg, JwtError> {
        match alg {
            "RS256" => Ok(Alg::Rs256),
            "ES256" => Ok(Alg::Es256),
            "EdDSA" => Ok(Alg::EdDsa),
            other => Err(JwtError::Algorithm(other.chars().take(16).collect())),
        }
    }

    /// The name in a header.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// Why a token was refused. None of these carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON, or too long.
    #[error("the token is malformed ({0})")]
    Malformed(&'static str),
    /// `alg` is none, HMAC or unknown.
    #[error("the token's algorithm {0:?} is not accepted (RS256, ES256 and EdDSA are)")]
    Algorithm(String),
    /// No key of the issuer has the token's `kid` (or the key's type does
    /// not fit the algorithm).
    #[error("no key of the issuer matches the token (kid {0:?})")]
    UnknownKey(Option<String>),
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    Signature,
    /// `exp` is past.
    #[error("the token expired")]
    Expired,
    /// `nbf` (or `iat`) is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the issuer configured.
    #[error("the token's issuer is not one pgward trusts")]
    Issuer,
    /// `aud` does not name the configured audience.
    #[error("the token is not meant for this audience")]
    Audience,
    /// A claim is missing or of the wrong type.
    #[error("the token lacks a valid {0} claim")]
    Claim(&'static str),
    /// `exp` is further away than `max_ttl` allows.
    #[error("the token lives longer than pgward accepts")]
    TooLong,
}

/// A key id as errors show it: at most 16 characters of it (it comes from
/// the token, and errors never carry the token).
fn shown_kid(kid: &str) -> String {
    kid.chars().take(16).collect()
}

/// A token split and decoded, not yet verified.
#[derive(Debug, Clone)]
pub struct Unverified<'a> {
    /// The algorithm the header names.
    pub alg: Alg,
    /// The header's key id.
    pub kid: Option<String>,
    /// The claims.
    pub claims: Map<String, Value>,
    /// `header.payload`, what the signature covers.
    pub signed: &'a [u8],
    /// The signature's bytes.
    pub signature: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed(what))
}

/// Splits and decodes a compact JWS.
pub fn decode(token: &str) -> Result<Unverified<'_>, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed("longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("not three dot-separated parts"));
    };
    let header: Header = serde_json::from_slice(&b64(h, "header is not base64url")?)
        .map_err(|_| JwtError::Malformed("header is not a JSON object with alg"))?;
    let alg = Alg::parse(&header.alg)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&b64(p, "payload is not base64url")?)
            .map_err(|_| JwtError::Malformed("payload is not a JSON object"))?;
    let signature = b64(s, "signature is not base64url")?;
    Ok(Unverified {
        alg,
        kid: header.kid,
        claims,
        signed: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature,
    })
}

/// One public key of a JSON Web Key Set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Jwk {
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The algorithm it is for, when stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// `sig` when stated.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// EC and OKP: the curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC x, or the OKP public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// A JSON Web Key Set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Jwks {
    /// Its keys.
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// Whether this key can verify `alg` (its type and curve fit, it is for
    /// signing, and a stated `alg` is that one): a key is never used with
    /// an algorithm of another family.
    fn fits(&self, alg: Alg) -> bool {
        let family = match alg {
            Alg::Rs256 => self.kty == "RSA",
            Alg::Es256 => self.kty == "EC" && self.crv.as_deref() == Some("P-256"),
            Alg::EdDsa => self.kty == "OKP" && self.crv.as_deref() == Some("Ed25519"),
        };
        family
            && self.use_.as_deref().is_none_or(|u| u == "sig")
            && self.alg.as_deref().is_none_or(|a| a == alg.name())
    }

    /// Checks `signature` over `signed` with this key.
    fn verify(&self, alg: Alg, signed: &[u8], sig: &[u8]) -> Result<(), JwtError> {
        let field = |f: &Option<String>| -> Result<Vec<u8>, JwtError> {
            let v = f.as_deref().ok_or(JwtError::UnknownKey(self.kid.clone()))?;
            URL_SAFE_NO_PAD
                .decode(v)
                .map_err(|_| JwtError::UnknownKey(self.kid.clone()))
        };
        let ok = match alg {
            Alg::Rs256 => {
                let key = signature::RsaPublicKeyComponents {
                    n: field(&self.n)?,
                    e: field(&self.e)?,
                };
                key.verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, sig)
                    .is_ok()
            }
            Alg::Es256 => {
                let (x, y) = (field(&self.x)?, field(&self.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(JwtError::UnknownKey(self.kid.clone()));
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signed, sig)
                    .is_ok()
            }
            Alg::EdDsa => UnparsedPublicKey::new(&signature::ED25519, field(&self.x)?)
                .verify(signed, sig)
                .is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(JwtError::Signature)
        }
    }
}

impl Jwks {
    /// Verifies a token's signature with the key its `kid` names (or, with
    /// no `kid`, the only key that fits its algorithm).
    pub fn verify(&self, t: &Unverified) -> Result<(), JwtError> {
        let fitting: Vec<&Jwk> = self.keys.iter().filter(|k| k.fits(t.alg)).collect();
        let key = match &t.kid {
            Some(kid) => fitting
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str())),
            None if fitting.len() == 1 => fitting.first(),
            None => None,
        };
        let key = key.ok_or_else(|| JwtError::UnknownKey(t.kid.as_deref().map(shown_kid)))?;
        key.verify(t.alg, t.signed, &t.signature)
    }

    /// Whether some key has this id (a token naming another may mean the
    /// issuer rotated its keys).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// What the claims must say.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// `iss` exactly.
    pub issuer: &'a str,
    /// `aud` (a string, or an array holding it).
    pub audience: &'a str,
    /// Now, in seconds since the epoch.
    pub now: u64,
    /// Clock skew allowed on exp, nbf and iat, in seconds.
    pub skew: u64,
    /// How far in the future `exp` may be, in seconds.
    pub max_ttl: Option<u64>,
}

fn number(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| Some(f as u64))
            .ok_or(JwtError::Claim(name)),
    }
}

/// Checks iss, aud, exp (required), nbf and iat; returns `exp`.
pub fn check_claims(claims: &Map<String, Value>, x: &Expect) -> Result<u64, JwtError> {
    if claims.get("iss").and_then(Value::as_str) != Some(x.issuer) {
        return Err(JwtError::Issuer);
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == x.audience,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(x.audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(JwtError::Audience);
    }
    let exp = number(claims, "exp")?.ok_or(JwtError::Claim("exp"))?;
    if exp.saturating_add(x.skew) <= x.now {
        return Err(JwtError::Expired);
    }
    for name in ["nbf", "iat"] {
        if let Some(t) = number(claims, name)? {
            if t > x.now.saturating_add(x.skew) {
                return Err(JwtError::NotYetValid);
            }
        }
    }
    if let Some(max) = x.max_ttl {
        if exp > x.now.saturating_add(max).saturating_add(x.skew) {
            return Err(JwtError::TooLong);
        }
    }
    Ok(exp)
}

/// Signs `claims` with an Ed25519 key (PKCS#8): pgward's own tokens.
pub fn sign_eddsa(
    key: &signature::Ed25519KeyPair,
    kid: &str,
    claims: &Map<String, Value>,
) -> String {
    let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid });
    let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
    out.push('.');
    out += &URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
    let sig = key.sign(out.as_bytes());
    out.push('.');
    out += &URL_SAFE_NO_PAD.encode(sig.as_ref());
    out
}

/// The public JWK of an Ed25519 key.
pub fn eddsa_jwk(key: &signature::Ed25519KeyPair, kid: &str) -> Jwk {
    use signature::KeyPair;
    Jwk {
        kty: "OKP".into(),
        kid: Some(kid.into()),
        alg: Some("EdDSA".into()),
        use_: Some("sig".into()),
        crv: Some("Ed25519".into()),
        n: None,
        e: None,
        x: Some(URL_SAFE_NO_PAD.encode(key.public_key().as_ref())),
        y: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn expect(now: u64) -> Expect<'static> {
        Expect {
            issuer: "https://idp.example",
            audience: "pgward",
            now,
            skew: 30,
            max_ttl: Some(3600),
        }
    }

    fn ed() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn good() -> Map<String, Value> {
        claims(serde_json::json!({
            "iss": "https://idp.example", "aud": ["x", "pgward"], "sub": "ci-42",
            "exp": 2000, "nbf": 1000, "iat": 1000
        }))
    }

    #[test]
    fn eddsa_tokens_verify_and_their_claims_are_checked() {
        let key = ed();
        let jwks = Jwks {
            keys: vec![eddsa_jwk(&key, "k1")],
        };
        let token = sign_eddsa(&key, "k1", &good());
        let t = decode(&token).unwrap();
        assert_eq!((t.alg, t.kid.as_deref()), (Alg::EdDsa, Some("k1")));
        jwks.verify(&t).unwrap();
        assert_eq!(check_claims(&t.claims, &expect(1500)), Ok(2000));
        assert_eq!(
            check_claims(&t.claims, &expect(2030)),
            Err(JwtError::Expired)
        );
        assert_eq!(check_claims(&t.claims, &expect(2029)), Ok(2000), "skew");
        assert_eq!(
            check_claims(&t.claims, &expect(900)),
            Err(JwtError::NotYetValid)
        );
        let far = claims(
            serde_json::json!({"iss": "https://idp.example", "aud": "pgward", "exp": 99999}),
        );
        assert_eq!(check_claims(&far, &expect(1500)), Err(JwtError::TooLong));
        let mut wrong = good();
        wrong.insert("aud".into(), "other".into());
        assert_eq!(check_claims(&wrong, &expect(1500)), Err(JwtError::Audience));
        wrong = good();
        wrong.insert("iss".into(), "https://evil".into());
        assert_eq!(check_claims(&wrong, &expect(1500)), Err(JwtError::Issuer));
        wrong = good();
        wrong.remove("exp");
        assert_eq!(
            check_claims(&wrong, &expect(1500)),
            Err(JwtError::Claim("exp"))
        );
        // Another key, another kid, a flipped signature bit.
        let other = Jwks {
            keys: vec![eddsa_jwk(&ed(), "k1")],
        };
        assert_eq!(other.verify(&t), Err(JwtError::Signature));
        assert_eq!(
            decode(&sign_eddsa(&key, "k2", &good())).and_then(|t| jwks.verify(&t)),
            Err(JwtError::UnknownKey(Some("k2".into())))
        );
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(decode(&tampered).and_then(|t| jwks.verify(&t)).is_err());
    }

    #[test]
    fn es256_tokens_verify() {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let public = key.public_key().as_ref();
        let jwk = Jwk {
            kty: "EC".into(),
            kid: Some("ec".into()),
            alg: None,
            use_: None,
            crv: Some("P-256".into()),
            n: None,
            e: None,
            x: Some(URL_SAFE_NO_PAD.encode(&public[1..33])),
            y: Some(URL_SAFE_NO_PAD.encode(&public[33..65])),
        };
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"ec"}"#);
        let payload = URL_SAFE_NO_PAD.encode(Value::Object(good()).to_string());
        let signed = format!("{header}.{payload}");
        let sig = key.sign(&rng, signed.as_bytes()).unwrap();
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        let jwks = Jwks { keys: vec![jwk] };
        jwks.verify(&decode(&token).unwrap()).unwrap();
    }

    /// A 2048-bit RSA key (PKCS#1 DER) made for these tests with openssl
    /// (ring cannot make one).
    const RSA_TEST_KEY: &[u8] = include_bytes!("../../tests/support/rsa2048-test-key.der");

    /// An RS256 token of `claims` and the key's public JWK.
    fn rs256(claims: &Map<String, Value>) -> (String, Jwk) {
        let key = signature::RsaKeyPair::from_der(RSA_TEST_KEY).unwrap();
        let components: signature::RsaPublicKeyComponents<Vec<u8>> = key.public().into();
        let jwk = Jwk {
            kty: "RSA".into(),
            kid: Some("rsa".into()),
            alg: Some("RS256".into()),
            use_: Some("sig".into()),
            crv: None,
            n: Some(URL_SAFE_NO_PAD.encode(&components.n)),
            e: Some(URL_SAFE_NO_PAD.encode(&components.e)),
            x: None,
            y: None,
        };
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"rsa"}"#);
        let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
        let signed = format!("{header}.{payload}");
        let mut sig = vec![0u8; key.public().modulus_len()];
        key.sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signed.as_bytes(),
            &mut sig,
        )
        .unwrap();
        (format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig)), jwk)
    }

    #[test]
    fn rs256_tokens_verify_and_hs256_with_the_public_key_does_not() {
        let (token, jwk) = rs256(&good());
        let jwks = Jwks {
            keys: vec![jwk.clone()],
        };
        jwks.verify(&decode(&token).unwrap()).unwrap();
        // The classic confusion: HS256 "signed" with the RSA public key.
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"rsa"}"#);
        let forged = format!("{header}.{}", token.split('.').nth(1).unwrap());
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwk.n.unwrap().as_bytes()),
            forged.as_bytes(),
        );
        let forged = format!("{forged}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
        assert!(matches!(decode(&forged), Err(JwtError::Algorithm(a)) if a == "HS256"));
    }

    #[test]
    fn none_hmac_and_key_confusion_are_refused_without_echoing_the_token() {
        let key = ed();
        let jwks = Jwks {
            keys: vec![eddsa_jwk(&key, "k1")],
        };
        let payload = URL_SAFE_NO_PAD.encode(Value::Object(good()).to_string());
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS256","kid":"k1"}"#,
            r#"{"alg":"RS384"}"#,
        ] {
            let token = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(header));
            let e = decode(&token).unwrap_err();
            assert!(matches!(e, JwtError::Algorithm(_)), "{header}: {e:?}");
            assert!(!e.to_string().contains(&payload));
        }
        // An EdDSA key is never used for ES256 or RS256.
        let token = format!(
            "{}.{payload}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode([0u8; 64])
        );
        assert_eq!(
            jwks.verify(&decode(&token).unwrap()),
            Err(JwtError::UnknownKey(Some("k1".into())))
        );
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.e30.",
            "e30.!!.",
            &"a".repeat(20_000),
        ] {
            assert!(
                matches!(decode(bad), Err(JwtError::Malformed(_))),
                "{bad:.20}"
            );
        }
    }
}
