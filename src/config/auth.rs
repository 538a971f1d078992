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
    refetch_secs: Option<u64>,
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
    jwks_ca_file: Option<PathBuf>,
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
    pub keys: Arc<KeySet>,
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
            .field("keys", &self.keys.current().keys.len())
            .finish()
    }
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwksSource({})", self.url)
    }
}

impl PartialEq for Issuer {
    fn eq(&self, o: &Issuer) -> bool {
        self.issuer == o.issuer
            && self.audience == o.audience
            && *self.keys.current() == *o.keys.current()
    }
}

/// Where an issuer's JWKS comes from, when it is fetched.
#[derive(Clone)]
pub struct JwksSource {
    /// The https:// URL.
    pub url: String,
    /// TLS for it (the roots of `jwks_ca_file`, or the system's bundle).
    pub tls: Arc<rustls::ClientConfig>,
}

/// An issuer's keys: as read from a file, or as last fetched (none until
/// the first fetch). Shared by every worker; replaced whole on a refresh.
#[derive(Debug)]
pub struct KeySet {
    current: std::sync::RwLock<Arc<Jwks>>,
    /// Where to fetch them from, when they are fetched.
    pub source: Option<JwksSource>,
    /// When a fetch last began, and whether one runs now.
    fetch: std::sync::Mutex<(Option<std::time::Instant>, bool)>,
    /// The least time between two fetches.
    pub refetch_every: Duration,
    /// Counts the key sets put in place.
    generation: std::sync::atomic::AtomicU64,
}

impl KeySet {
    /// Keys that never change (a file, or pgward's own).
    pub fn fixed(jwks: Jwks) -> KeySet {
        KeySet {
            current: std::sync::RwLock::new(Arc::new(jwks)),
            source: None,
            fetch: std::sync::Mutex::new((None, false)),
            refetch_every: Duration::from_secs(30),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Keys fetched from `source` (none yet), at most once per `every`.
    pub fn fetched(source: JwksSource, every: Duration) -> KeySet {
        KeySet {
            source: Some(source),
            refetch_every: every,
            ..KeySet::fixed(Jwks::default())
        }
    }

    /// The keys in force.
    pub fn current(&self) -> Arc<Jwks> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many key sets were put in place.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Puts fetched keys in place.
    pub fn replace(&self, jwks: Jwks) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(jwks);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Whether a fetch may begin now: none running, and none begun within
    /// `refetch_every` (an unknown `kid` in every login must not make
    /// pgward fetch in a loop). Marks one as running when it may.
    pub fn begin_fetch(&self) -> bool {
        let mut f = self.fetch.lock().unwrap_or_else(|p| p.into_inner());
        let recent = f.0.is_some_and(|t| t.elapsed() < self.refetch_every);
        if f.1 || recent {
            return false;
        }
        *f = (Some(std::time::Instant::now()), true);
        true
    }

    /// Whether a fetch runs now.
    pub fn fetching(&self) -> bool {
        self.fetch.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    /// Marks the running fetch as ended.
    pub fn end_fetch(&self) {
        self.fetch.lock().unwrap_or_else(|p| p.into_inner()).1 = false;
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

/// Where Debian keeps the system's CA certificates.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

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
            keys: Arc::new(KeySet::fixed(Jwks {
                keys: vec![eddsa_jwk(&key.pair, &key.kid)],
            })),
            subject_claim: "sub".into(),
            roles_claim: None,
            role_map: BTreeMap::new(),
            max_ttl: span("auth.tokens.max_ttl", &t.max_ttl)?,
        });
        signing = Some(key);
    }
    let mut sources = Vec::new();
    let refetch = Duration::from_secs(a.refetch_secs.unwrap_or(30).clamp(1, 3600));
    for (i, o) in a.oidc.into_iter().enumerate() {
        let key = |k: &str| format!("auth.oidc[{i}].{k}");
        let keys = match (o.jwks_file, o.jwks_url) {
            (Some(f), None) => {
                let f = resolve(f);
                let text = std::fs::read_to_string(&f).map_err(|e| {
                    (
                        key("jwks_file"),
                        format!("cannot read {}: {e}", f.display()),
                    )
                })?;
                let jwks: Jwks = serde_json::from_str(&text).map_err(|e| {
                    (
                        key("jwks_file"),
                        format!("{} is not a JWKS: {e}", f.display()),
                    )
                })?;
                if jwks.keys.is_empty() {
                    return Err((key("jwks_file"), format!("{} holds no keys", f.display())));
                }
                jwks
            }
            (None, Some(url)) => {
                if !url.starts_with("https://") {
                    return Err((key("jwks_url"), format!("{url:?} is not an https:// URL")));
                }
                let ca = o
                    .jwks_ca_file
                    .map(resolve)
                    .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
                let tls =
                    crate::proxy::tls::client_config(crate::config::SslMode::VerifyFull, Some(&ca))
                        .map_err(|e| (key("jwks_ca_file"), e))?
                        .ok_or_else(|| (key("jwks_ca_file"), "no TLS configuration".to_string()))?;
                sources.push(JwksSource { url, tls });
                Jwks::default()
            }
            _ => return Err((key("jwks_file"), "set one of jwks_file and jwks_url".into())),
        };
        let keys = match sources.pop() {
            Some(source) => KeySet::fetched(source, refetch),
            None => KeySet::fixed(keys),
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
