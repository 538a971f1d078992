//! `[auth]`: short-lived tokens as Postgres passwords. pgward's own tokens
//! (`[auth.tokens]`, an Ed25519 key made by `pgward token keygen`) and
//! OIDC issuers (`[[auth.oidc]]`, keys from a JWKS), each with how its
//! claims map to policy roles.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::jwt::{eddsa_jwk, Jwks};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    #[serde(default)]
    allow_plaintext_loopback: bool,
    skew_secs: Option<u64>,
    tokens: Option<RawTokens>,
    #[serde(default)]
    oidc: Vec<RawOidc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    key_file: PathBuf,
    issuer: Option<String>,
    audience: Option<String>,
    max_ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: String,
    audience: String,
    jwks_file: Option<PathBuf>,
    jwks_url: Option<String>,
    subject_claim: Option<String>,
    roles_claim: Option<String>,
    max_ttl: Option<String>,
    #[serde(default)]
    roles: BTreeMap<String, Vec<String>>,
}

/// One issuer whose tokens pgward accepts.
#[derive(Clone)]
pub struct Issuer {
    /// `iss`, exactly.
    pub issuer: String,
    /// The `aud` tokens must name.
    pub audience: String,
    /// Its public keys.
    pub keys: Arc<Jwks>,
    /// The claim naming the identity (`sub`).
    pub subject_claim: String,
    /// The claim listing the identity's groups or roles; `None` for
    /// pgward's own tokens, whose `roles` claim names pgward roles.
    pub roles_claim: Option<String>,
    /// Claim values to pgward roles (OIDC).
    pub role_map: BTreeMap<String, Vec<String>>,
    /// How far in the future `exp` may be.
    pub max_ttl: Duration,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &self.keys.keys.len())
            .finish()
    }
}

impl PartialEq for Issuer {
    fn eq(&self, o: &Issuer) -> bool {
        self.issuer == o.issuer && self.audience == o.audience && self.keys == o.keys
    }
}

/// pgward's own signing key, for `pgward token issue`.
#[derive(Clone)]
pub struct SigningKey {
    /// The key pair.
    pub pair: Arc<ring::signature::Ed25519KeyPair>,
    /// Its key id (from the public key).
    pub kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.kid)
    }
}

/// `[auth]` after validation.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Whether a token may travel in clear on a loopback connection
    /// (development only).
    pub allow_plaintext_loopback: bool,
    /// Clock skew allowed on exp, nbf and iat.
    pub skew: Duration,
    /// The issuers, pgward's own first.
    pub issuers: Vec<Issuer>,
    /// pgward's own key, when `[auth.tokens]` is set.
    pub signing: Option<SigningKey>,
}

impl PartialEq for AuthConfig {
    fn eq(&self, o: &AuthConfig) -> bool {
        self.allow_plaintext_loopback == o.allow_plaintext_loopback
            && self.skew == o.skew
            && self.issuers == o.issuers
    }
}

fn span(key: &str, v: &Option<String>) -> Result<Duration, (String, String)> {
    match v {
        None => Ok(Duration::from_secs(3600)),
        Some(t) => crate::policy::approval::parse_span(t)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                (
                    key.to_string(),
                    format!("{t:?} is not a positive duration such as \"15m\" or \"1h\""),
                )
            }),
    }
}

/// The key id of an Ed25519 public key: its first 8 bytes in hex.
pub fn kid_of(pair: &ring::signature::Ed25519KeyPair) -> String {
    use ring::signature::KeyPair;
    crate::audit::chain::sha256_hex(pair.public_key().as_ref(), 8)
}

/// Reads an Ed25519 PKCS#8 key file (as `pgward token keygen` writes it).
pub fn read_signing_key(path: &std::path::Path) -> Result<SigningKey, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let der = match std::str::from_utf8(&bytes) {
        // PEM, or base64 on one line.
        Ok(text) => {
            let b64: String = text
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<Vec<_>>()
                .join("");
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64.trim())
                .map_err(|_| format!("{} is not a PEM or base64 Ed25519 key", path.display()))?
        }
        Err(_) => bytes,
    };
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|_| {
        format!(
            "{} is not an Ed25519 PKCS#8 key (make one with pgward token keygen)",
            path.display()
        )
    })?;
    Ok(SigningKey {
        kid: kid_of(&pair),
        pair: Arc::new(pair),
    })
}

/// Validates `[auth]`; errors name the key.
pub(super) fn auth_config(
    a: RawAuth,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<AuthConfig, (String, String)> {
    let mut issuers = Vec::new();
    let mut signing = None;
    if let Some(t) = a.tokens {
        let key = read_signing_key(&resolve(t.key_file))
            .map_err(|e| ("auth.tokens.key_file".to_string(), e))?;
        issuers.push(Issuer {
            issuer: t.issuer.unwrap_or_else(|| "pgward".into()),
            audience: t.audience.unwrap_or_else(|| "pgward".into()),
            keys: Arc::new(Jwks {
                keys: vec![eddsa_jwk(&key.pair, &key.kid)],
            }),
            subject_claim: "sub".into(),
            roles_claim: None,
            role_map: BTreeMap::new(),
            max_ttl: span("auth.tokens.max_ttl", &t.max_ttl)?,
        });
        signing = Some(key);
    }
    for (i, o) in a.oidc.into_iter().enumerate() {
        let key = |k: &str| format!("auth.oidc[{i}].{k}");
        let keys = match (o.jwks_file, o.jwks_url) {
            (Some(f), None) => {
                let f = resolve(f);
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| (key("jwks_file"), format!("cannot read {}: {e}", f.display())))?;
                let jwks: Jwks = serde_json::from_str(&text)
                    .map_err(|e| (key("jwks_file"), format!("{} is not a JWKS: {e}", f.display())))?;
                if jwks.keys.is_empty() {
                    return Err((key("jwks_file"), format!("{} holds no keys", f.display())));
                }
                jwks
            }
            (None, Some(_)) => {
                return Err((
                    key("jwks_url"),
                    "fetching keys over HTTPS is not built yet: save the issuer's JWKS to a file and set jwks_file".into(),
                ))
            }
            _ => return Err((key("jwks_file"), "set one of jwks_file and jwks_url".into())),
        };
        if !o.issuer.starts_with("https://") {
            return Err((
                key("issuer"),
                format!("{:?} is not an https:// issuer URL", o.issuer),
            ));
        }
        issuers.push(Issuer {
            issuer: o.issuer,
            audience: o.audience,
            keys: Arc::new(keys),
            subject_claim: o.subject_claim.unwrap_or_else(|| "sub".into()),
            roles_claim: Some(o.roles_claim.unwrap_or_else(|| "groups".into())),
            role_map: o.roles,
            max_ttl: span(&key("max_ttl"), &o.max_ttl)?,
        });
    }
    Ok(AuthConfig {
        allow_plaintext_loopback: a.allow_plaintext_loopback,
        skew: Duration::from_secs(a.skew_secs.unwrap_or(60).min(600)),
        issuers,
        signing,
    })
}
