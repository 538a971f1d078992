//! `pgward approvals ...` and `pgward sessions ...`: the admin API from a
//! terminal. Each command is one HTTP call; replies are printed as tables
//! (or the JSON as served, with `--json`). Exit status: 0 done, 1 refused
//! by the API (not found, not pending, not allowed), 2 unreachable.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// Where the API is and who calls it.
pub struct Target {
    /// `http://host:port`.
    pub url: String,
    /// The bearer token.
    pub token: Option<String>,
    /// Print JSON as served.
    pub json: bool,
}

/// One CLI call.
pub enum Call {
    /// List approval requests (pending, or all kept).
    ListApprovals { all: bool },
    /// Show one request.
    ShowApproval { id: String },
    /// Approve or deny one.
    Decide {
        id: String,
        approve: bool,
        reason: Option<String>,
    },
    /// List sessions.
    ListSessions,
    /// Terminate one.
    Terminate { id: String },
}

fn field(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// `s` on one line, at most `max` characters: control characters, line
/// breaks and bidi overrides cannot move the terminal's cursor or reorder
/// what the reviewer reads (they show escaped).
fn one_line(s: &str, max: usize) -> String {
    let flat = crate::audit::event::printable(s);
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

/// Prints a reply as a table.
fn print(call: &Call, v: &Value) {
    match call {
        Call::ListApprovals { .. } => {
            println!(
                "{:<12} {:<9} {:<6} {:<12} {:<12} {:<27} {:<28} sql",
                "id", "state", "mode", "user", "database", "created", "reasons"
            );
            for r in v
                .get("approvals")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                println!(
                    "{:<12} {:<9} {:<6} {:<12} {:<12} {:<27} {:<28} {}",
                    field(r, "id"),
                    field(r, "state"),
                    field(r, "mode"),
                    field(r, "user"),
                    field(r, "database"),
                    field(r, "created"),
                    field(r, "reasons"),
                    one_line(&field(r, "sql"), 80)
                );
            }
        }
        Call::ListSessions => {
            println!(
                "{:<16} {:<12} {:<12} {:<22} {:<20} {:<27} statement",
                "id", "user", "database", "client", "state", "since"
            );
            for s in v
                .get("sessions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                println!(
                    "{:<16} {:<12} {:<12} {:<22} {:<20} {:<27} {}",
                    field(s, "id"),
                    field(s, "user"),
                    field(s, "database"),
                    field(s, "client"),
                    field(s, "state"),
                    field(s, "since"),
                    one_line(&field(s, "statement"), 80)
                );
            }
        }
        Call::Terminate { id } => println!("session {id} terminated"),
        Call::ShowApproval { .. } | Call::Decide { .. } => {
            for key in [
                "id",
                "state",
                "mode",
                "user",
                "roles",
                "session",
                "database",
                "client",
                "created",
                "reasons",
                "fingerprint",
                "context",
                "decided_by",
                "decided",
                "reason",
            ] {
                let value = field(v, key);
                if !value.is_empty() {
                    println!("{key:<12} {}", one_line(&value, 200));
                }
            }
            // Every line of the text behind a bar: a line of SQL can never
            // pass for one of the fields above.
            println!("sql");
            for line in field(v, "sql").split('\n') {
                println!("  | {}", crate::audit::event::printable(line));
            }
            if let Some(Value::Array(ps)) = v.get("params") {
                for (i, p) in ps.iter().enumerate() {
                    let shown = p.as_str().map_or("NULL".to_string(), |s| one_line(s, 200));
                    println!("${:<11} {shown}", i + 1);
                }
            }
        }
    }
}

/// Runs one call against the admin API.
pub fn run(target: &Target, call: Call) -> ExitCode {
    let base = target.url.trim_end_matches('/');
    let (method, path, body) = match &call {
        Call::ListApprovals { all } => (
            "GET",
            format!("/v1/approvals{}", if *all { "?state=all" } else { "" }),
            None,
        ),
        Call::ShowApproval { id } => ("GET", format!("/v1/approvals/{id}"), None),
        Call::Decide {
            id,
            approve,
            reason,
        } => (
            "POST",
            format!(
                "/v1/approvals/{id}/{}",
                if *approve { "approve" } else { "deny" }
            ),
            Some(serde_json::json!({ "reason": reason }).to_string()),
        ),
        Call::ListSessions => ("GET", "/v1/sessions".to_string(), None),
        Call::Terminate { id } => ("POST", format!("/v1/sessions/{id}/terminate"), None),
    };
    let reply = super::client::call(
        &format!("{base}{path}"),
        method,
        target.token.as_deref(),
        body.as_deref().map(str::as_bytes),
        Duration::from_secs(10),
    );
    let (status, bytes) = match reply {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pgward: {e}");
            return ExitCode::from(2);
        }
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let why = v.get("error").and_then(Value::as_str).map_or_else(
            || String::from_utf8_lossy(&bytes).into_owned(),
            str::to_string,
        );
        eprintln!("pgward: {method} {path}: {status}: {why}");
        if status == 401 {
            eprintln!("pgward: set PGWARD_ADMIN_TOKEN (a reviewer's token to decide)");
        }
        return ExitCode::from(1);
    }
    if target.json {
        println!("{}", String::from_utf8_lossy(&bytes).trim_end());
    } else {
        print(&call, &v);
    }
    ExitCode::SUCCESS
}
