//! `[admin]`: the admin HTTP listener, its bearer tokens, the reviewers who
//! decide approval requests, the webhook told of new ones, and where the
//! requests are kept.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[admin]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    listen: Option<String>,
    token_env: Option<String>,
    webhook: Option<String>,
    state_dir: Option<PathBuf>,
    #[serde(default)]
    reviewers: Vec<RawReviewer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReviewer {
    name: String,
    token_env: String,
}

/// One reviewer: may decide approval requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewer {
    /// The name decisions are recorded under.
    pub name: String,
    /// The bearer token.
    pub token: String,
}

/// `[admin]` after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where the admin API listens (loopback by default).
    pub listen: SocketAddr,
    /// The bearer token for read-only calls, when set.
    pub token: Option<String>,
    /// Where to POST new approval requests.
    pub webhook: Option<String>,
    /// Who may decide approval requests.
    pub reviewers: Vec<Reviewer>,
    /// Where approval requests are kept (`approvals.jsonl`).
    pub state_dir: Option<PathBuf>,
}

/// The default admin address: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:6433";

/// Tokens shorter than this are refused (a bearer token is a password).
const MIN_TOKEN_LEN: usize = 16;

fn token_from(var: &str, key: &str) -> Result<String, (String, String)> {
    let t = std::env::var(var).map_err(|_| {
        (
            key.to_string(),
            format!("environment variable {var} is not set"),
        )
    })?;
    if t.len() < MIN_TOKEN_LEN || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err((
            key.to_string(),
            format!("the token in {var} must be at least {MIN_TOKEN_LEN} characters without spaces (try: openssl rand -hex 24)"),
        ));
    }
    Ok(t)
}

/// Validates `[admin]`; errors name the key. Relative paths resolve with
/// `resolve`.
pub(super) fn admin_config(
    a: RawAdmin,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<AdminConfig, (String, String)> {
    let text = a.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    let listen: SocketAddr = text.parse().map_err(|_| {
        (
            "admin.listen".to_string(),
            format!("{text:?} is not an address:port such as \"127.0.0.1:6433\""),
        )
    })?;
    let token = match &a.token_env {
        Some(v) => Some(token_from(v, "admin.token_env")?),
        None => None,
    };
    if let Some(w) = &a.webhook {
        if !w.starts_with("http://") {
            return Err((
                "admin.webhook".into(),
                format!("{w:?} must be an http:// URL (pgward posts to a local relay; https is not supported)"),
            ));
        }
    }
    let mut reviewers: Vec<Reviewer> = Vec::new();
    for (i, r) in a.reviewers.into_iter().enumerate() {
        let key = |k: &str| format!("admin.reviewers[{i}].{k}");
        if r.name.is_empty() || r.name.len() > 63 || r.name.chars().any(|c| c.is_control()) {
            return Err((key("name"), "must be 1 to 63 printable characters".into()));
        }
        if reviewers.iter().any(|x| x.name == r.name) {
            return Err((key("name"), format!("reviewer {:?} is named twice", r.name)));
        }
        let t = token_from(&r.token_env, &key("token_env"))?;
        let clash = reviewers.iter().any(|x| x.token == t) || token.as_deref() == Some(t.as_str());
        if clash {
            return Err((
                key("token_env"),
                "every reviewer needs a token of its own, other than admin.token_env's".into(),
            ));
        }
        reviewers.push(Reviewer {
            name: r.name,
            token: t,
        });
    }
    Ok(AdminConfig {
        listen,
        token,
        webhook: a.webhook,
        reviewers,
        state_dir: a.state_dir.map(resolve),
    })
}
