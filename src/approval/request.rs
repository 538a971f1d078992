//! One approval request: who asked to run what, why it needs a human, and
//! where it stands. The same shape is kept on disk, served by the admin API
//! and shown by the CLI.

use serde::{Deserialize, Serialize};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for a reviewer.
    Pending,
    /// Approved; the statement may run once (until `expires`).
    Approved,
    /// A reviewer refused it.
    Denied,
    /// Nobody decided in time, or an approval went unused in time.
    Expired,
    /// The client cancelled it or went away while it was held.
    Withdrawn,
    /// Approved and run.
    Used,
    /// Held by a gateway that restarted: the session waiting for it is gone.
    Abandoned,
}

impl State {
    /// The name in JSON and in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Withdrawn => "withdrawn",
            State::Used => "used",
            State::Abandoned => "abandoned",
        }
    }

    /// True once nothing more can happen to the request.
    pub fn is_final(self) -> bool {
        !matches!(self, State::Pending | State::Approved)
    }
}

/// One request for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Short random id reviewers type (`a3f9c2d17e40`).
    pub id: String,
    /// Where it stands.
    pub state: State,
    /// `hold` or `retry`.
    pub mode: String,
    /// When it was made (RFC 3339).
    pub created: String,
    /// Microseconds since the epoch when it was made.
    pub created_us: u64,
    /// When a pending request expires, or an approval stops being usable
    /// (microseconds since the epoch).
    pub expires_us: u64,
    /// How long an approval stays usable, in milliseconds.
    pub grant_ttl_ms: u64,
    /// The pgward user that asked.
    pub user: String,
    /// That user's roles.
    pub roles: Vec<String>,
    /// The session that asked (as in the audit log).
    pub session: String,
    /// The database the client named.
    pub database: String,
    /// The client's address.
    pub client: String,
    /// The statement text, exactly as the server would read it.
    pub sql: String,
    /// How the server reads it beyond the text: `strings standard` (or
    /// `escape`), and for a Bind the declared parameter types and which
    /// values are text (`t`) or binary (`b`).
    #[serde(default)]
    pub context: String,
    /// Bind parameters as text (`None` for NULL; binary ones in hex as
    /// `\x...`); absent for a simple Query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<Option<String>>>,
    /// The statement's fingerprint (literals replaced).
    pub fingerprint: String,
    /// The risks it matched, as the policy writes them.
    pub reasons: Vec<String>,
    /// Who decided (a reviewer's name), or what ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided: Option<String>,
    /// The reviewer's reason, or why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What an approval is matched against: a hash of the user, database,
    /// text and parameters (only the identical statement may use it).
    pub key: String,
}

fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(2 * bytes.len());
    crate::audit::chain::push_hex(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

/// A fresh request id: 12 hex digits from the system's random source.
pub fn new_id() -> String {
    hex(&crate::auth::scram::random_bytes::<6>())
}

/// True when `id` looks like one `new_id` makes (so paths and logs never
/// carry anything else).
pub fn is_id(id: &str) -> bool {
    id.len() == 12
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The key an approval is matched by: the SHA-256 of the user, database,
/// statement text, how the server reads it, and the parameters, each
/// length-prefixed.
pub fn key(
    user: &str,
    database: &str,
    sql: &str,
    context: &str,
    params: Option<&[Option<String>]>,
) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut part = |b: &[u8]| {
        ctx.update(&(b.len() as u64).to_be_bytes());
        ctx.update(b);
    };
    part(user.as_bytes());
    part(database.as_bytes());
    part(sql.as_bytes());
    part(context.as_bytes());
    match params {
        None => part(b"Q"),
        Some(ps) => {
            part(b"B");
            for p in ps {
                match p {
                    None => part(b"N"),
                    Some(v) => {
                        part(b"V");
                        part(v.as_bytes());
                    }
                }
            }
        }
    }
    hex(ctx.finish().as_ref())
}

/// A parameter's bytes as shown to reviewers: the text, or `\x` and hex
/// for a binary parameter or text that is not UTF-8.
pub fn shown_param(bytes: &[u8], binary: bool) -> String {
    match std::str::from_utf8(bytes) {
        Ok(t) if !binary => t.to_string(),
        _ => format!("\\x{}", hex(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_in_every_part() {
        let k = key("agent", "app", "DELETE FROM t", "", None);
        assert_eq!(k.len(), 64);
        assert_ne!(k, key("agent2", "app", "DELETE FROM t", "", None));
        assert_ne!(k, key("agent", "app2", "DELETE FROM t", "", None));
        assert_ne!(k, key("agent", "app", "DELETE FROM t ", "", None));
        assert_ne!(k, key("agent", "app", "DELETE FROM t", "", Some(&[])));
        assert_ne!(
            k,
            key("agent", "app", "DELETE FROM t", "strings escape", None)
        );
        let one = [Some("1".to_string())];
        let null = [None];
        assert_ne!(
            key("a", "b", "c", "", Some(&one)),
            key("a", "b", "c", "", Some(&null))
        );
        // Length prefixes: moving a byte between parts changes the key.
        assert_ne!(key("ab", "c", "d", "", None), key("a", "bc", "d", "", None));
    }

    #[test]
    fn ids_are_short_lowercase_hex() {
        let id = new_id();
        assert!(is_id(&id), "{id}");
        assert_ne!(id, new_id());
        assert!(!is_id("../etc/passwd"));
        assert!(!is_id("A3F9C2D17E40"));
        assert_eq!(shown_param(b"42", false), "42");
        assert_eq!(shown_param(&[0xff, 0x00], false), "\\xff00");
        assert_eq!(shown_param(&[0, 0, 0, 1], true), "\\x00000001");
    }
}
