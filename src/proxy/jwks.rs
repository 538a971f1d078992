//! Fetching issuers' JWKS over HTTPS: in a thread of its own, never on a
//! worker. At start, and when a login names a key id the keys lack (a
//! rotation), at most once per `auth.refetch_secs` (30 s) per issuer; a
//! login waits up to 5 s for the fetch it asked for, asynchronously.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::auth::jwt::Jwks;
use crate::config::auth::KeySet;
use crate::config::Config;

/// How long a login waits for a fetch.
const LOGIN_WAIT: Duration = Duration::from_secs(5);

/// Fetches and parses a JWKS.
fn fetch(keys: &KeySet) -> Result<Jwks, String> {
    let Some(source) = &keys.source else {
        return Err("the issuer's keys are not fetched".into());
    };
    let (status, body) =
        crate::admin::client::get_https(&source.url, source.tls.clone(), Duration::from_secs(5))?;
    if status != 200 {
        return Err(format!("GET {}: status {status}", source.url));
    }
    let jwks: Jwks = serde_json::from_slice(&body)
        .map_err(|e| format!("GET {}: not a JWKS: {e}", source.url))?;
    if jwks.keys.is_empty() {
        return Err(format!("GET {}: the JWKS holds no keys", source.url));
    }
    Ok(jwks)
}

/// Begins a fetch of `keys` in a thread of its own, unless one runs or
/// one began within its `refetch_every` (30 s by default); true when one
/// began.
pub fn refresh(keys: Arc<KeySet>) -> bool {
    if keys.source.is_none() || !keys.begin_fetch() {
        return false;
    }
    let spawned = std::thread::Builder::new()
        .name("pgward-jwks".into())
        .spawn({
            let keys = keys.clone();
            move || {
                let url = keys
                    .source
                    .as_ref()
                    .map(|s| s.url.clone())
                    .unwrap_or_default();
                match fetch(&keys) {
                    Ok(jwks) => {
                        info!(%url, keys = jwks.keys.len(), "issuer keys fetched");
                        keys.replace(jwks);
                    }
                    Err(e) => warn!(error = %e, "issuer keys could not be fetched"),
                }
                keys.end_fetch();
            }
        });
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start a thread to fetch issuer keys");
        keys.end_fetch();
        return false;
    }
    true
}

/// Fetches every issuer's keys that come from a URL (at start).
pub fn prefetch(config: &Config) {
    for issuer in config.auth.iter().flat_map(|a| &a.issuers) {
        refresh(issuer.keys.clone());
    }
}

/// Waits (without blocking the worker) until `keys` are newer than
/// `generation`, or 5 s pass; true when they are.
pub async fn newer(keys: &KeySet, generation: u64) -> bool {
    let deadline = std::time::Instant::now() + LOGIN_WAIT;
    while std::time::Instant::now() < deadline {
        if keys.generation() > generation {
            return true;
        }
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
