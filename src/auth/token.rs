//! A token presented as a password, turned into an identity: the issuer
//! named by `iss` (and the key named by `kid`) verifies it, its claims are
//! checked, and its groups or roles become pgward roles. Pure logic; what
//! is refused never carries the token.

use crate::auth::jwt::{check_claims, decode, Expect, JwtError};
use crate::config::AuthConfig;

/// Who a verified token says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    /// The issuer (`iss`).
    pub issuer: String,
    /// The subject (the configured subject claim).
    pub subject: String,
    /// pgward roles, from the roles claim.
    pub roles: Vec<String>,
    /// When the token expires (seconds since the epoch).
    pub expires: u64,
    /// The token's id, when it has one (recorded; the token never is).
    pub jti: Option<String>,
}

/// Why a token was refused: the client's message, and the log's.
#[derive(Debug, Clone)]
pub struct Refused {
    /// SQLSTATE: 28P01 for a token that does not verify, 28000 otherwise.
    pub code: &'static str,
    /// What the client and the log are told (never the token).
    pub message: String,
    /// The issuer's keys lack the token's key, and they are fetched: a
    /// fetch may find it (the issuer rotated its keys).
    pub refetch: Option<std::sync::Arc<crate::config::auth::KeySet>>,
}

fn refused(code: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
        refetch: None,
    }
}

impl From<JwtError> for Refused {
    fn from(e: JwtError) -> Refused {
        let code = match e {
            JwtError::Signature | JwtError::UnknownKey(_) | JwtError::Algorithm(_) => "28P01",
            _ => "28000",
        };
        refused(code, format!("pgward: {e}"))
    }
}

/// Verifies `token` for user `user` at `now` (seconds since the epoch).
/// `role_exists` tells which pgward roles are defined.
pub fn verify(
    auth: &AuthConfig,
    token: &str,
    user: &str,
    now: u64,
    role_exists: &dyn Fn(&str) -> bool,
) -> Result<TokenIdentity, Refused> {
    let t = decode(token)?;
    let iss = t
        .claims
        .get("iss")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let issuer = auth
        .issuers
        .iter()
        .find(|i| i.issuer == iss)
        .ok_or(JwtError::Issuer)?;
    if let Err(e) = issuer.keys.current().verify(&t) {
        let unknown = matches!(e, JwtError::UnknownKey(_));
        let mut r = Refused::from(e);
        if unknown && issuer.keys.source.is_some() {
            r.refetch = Some(issuer.keys.clone());
        }
        return Err(r);
    }
    let expires = check_claims(
        &t.claims,
        &Expect {
            issuer: &issuer.issuer,
            audience: &issuer.audience,
            now,
            skew: auth.skew.as_secs(),
            max_ttl: Some(issuer.max_ttl.as_secs()),
        },
    )?;
    let subject = t
        .claims
        .get(&issuer.subject_claim)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty() && s.len() <= 63)
        .ok_or(JwtError::Claim("subject"))?;
    if subject != user {
        return Err(refused(
            "28000",
            format!("pgward: the token's subject is \"{subject}\"; log in with that user name"),
        ));
    }
    let values: Vec<&str> = match t
        .claims
        .get(issuer.roles_claim.as_deref().unwrap_or("roles"))
    {
        Some(serde_json::Value::String(s)) => vec![s.as_str()],
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    let mut roles: Vec<String> = Vec::new();
    for v in values {
        let mapped: Vec<String> = match &issuer.roles_claim {
            // pgward's own tokens name pgward roles; every one must exist.
            None if role_exists(v) => vec![v.to_string()],
            None => {
                return Err(refused(
                    "28000",
                    format!("pgward: the token names role \"{v}\", which is not configured"),
                ))
            }
            Some(_) => issuer.role_map.get(v).cloned().unwrap_or_default(),
        };
        for r in mapped {
            if !roles.contains(&r) {
                roles.push(r);
            }
        }
    }
    if roles.is_empty() {
        return Err(refused(
            "28000",
            format!("pgward: the token of \"{subject}\" maps to no pgward role"),
        ));
    }
    Ok(TokenIdentity {
        issuer: issuer.issuer.clone(),
        subject: subject.to_string(),
        roles,
        expires,
        jti: t
            .claims
            .get("jti")
            .and_then(|v| v.as_str())
            .map(|s| s.chars().take(128).collect()),
    })
}

/// Claims for a token pgward issues itself.
pub fn own_claims(
    issuer: &str,
    audience: &str,
    subject: &str,
    roles: &[String],
    now: u64,
    ttl: u64,
) -> serde_json::Map<String, serde_json::Value> {
    let jti = {
        let b = crate::auth::scram::random_bytes::<8>();
        let mut v = Vec::new();
        crate::audit::chain::push_hex(&mut v, &b);
        String::from_utf8(v).unwrap_or_default()
    };
    serde_json::json!({
        "iss": issuer, "aud": audience, "sub": subject, "roles": roles,
        "iat": now, "nbf": now, "exp": now + ttl, "jti": jti,
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}
