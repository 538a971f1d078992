//! The admin thread: its own monoio runtime with the admin listener, its
//! own audit stream (reviewers' decisions are recorded there before they
//! are answered), and the webhook sender, a thread of its own that posts
//! new approval requests one at a time.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::json;
use tracing::{error, info, warn};

use super::api::{handle, Api, Decided};
use super::http::{Request, Response};
use super::metrics::{render, Metrics};
use crate::approval::{Book, Request as ApprovalRequest};
use crate::audit::record::{Kind, Record};
use crate::audit::writer::{AuditStream, Durability, Level, OpenedStream};
use crate::config::{AdminConfig, Config};

fn workers() -> &'static Mutex<Vec<Arc<Mutex<Metrics>>>> {
    static WORKERS: OnceLock<Mutex<Vec<Arc<Mutex<Metrics>>>>> = OnceLock::new();
    WORKERS.get_or_init(Default::default)
}

/// Makes a worker's shared metrics part of every scrape.
pub fn register_worker_metrics(shared: Arc<Mutex<Metrics>>) {
    workers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(shared);
}

/// Renders `/metrics`: every worker's metrics merged, and the gauges.
pub fn scrape(book: Option<&Book>) -> String {
    let all = workers().lock().unwrap_or_else(|p| p.into_inner()).clone();
    let sessions = crate::proxy::registry::list();
    let held = sessions.iter().filter(|s| s.state == "held").count();
    let pending = book.map_or(0, |b| {
        b.list(false, crate::audit::time::now_micros())
            .iter()
            .filter(|r| r.state == crate::approval::State::Pending)
            .count()
    });
    render(
        &all,
        &[
            ("sessions", "Sessions open now.", sessions.len() as f64),
            (
                "sessions_held",
                "Sessions whose statement waits for approval.",
                held as f64,
            ),
            (
                "approvals_pending",
                "Approval requests waiting for a reviewer.",
                pending as f64,
            ),
        ],
    )
}

/// What the admin thread is started with.
pub struct AdminStart {
    /// `[admin]` as pgward started (the listen address is kept until restart).
    pub admin: AdminConfig,
    /// The approval book.
    pub book: Option<Arc<Book>>,
    /// The admin's audit stream, when the audit log is on.
    pub audit: Option<(OpenedStream, Durability)>,
}

/// Binds the admin listener (an error names the address) and starts the
/// admin thread.
pub fn start(s: AdminStart) -> Result<std::thread::JoinHandle<()>, String> {
    let addr = s.admin.listen;
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("admin.listen: cannot listen on {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("admin.listen: {e}"))?;
    if !addr.ip().is_loopback() {
        warn!(%addr, "the admin API listens beyond loopback: keep its tokens secret and the port firewalled");
    }
    if let (Some(book), Some(url)) = (&s.book, s.admin.webhook.clone()) {
        book.set_listener(webhook_sender(url));
    }
    std::thread::Builder::new()
        .name("pgward-admin".into())
        .spawn(move || run(s, listener, addr))
        .map_err(|e| format!("cannot start the admin thread: {e}"))
}

/// The admin configuration in force: the latest reload's, else the start's.
fn admin_in_force(started: &AdminConfig) -> Option<AdminConfig> {
    match crate::proxy::reload::latest() {
        Some((_, bp)) => bp.config().admin.clone(),
        None => Some(started.clone()),
    }
}

fn run(s: AdminStart, listener: std::net::TcpListener, addr: SocketAddr) {
    let rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build();
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot build the admin runtime");
            return;
        }
    };
    rt.block_on(async move {
        let audit = s.audit.map(|(opened, durability)| {
            let (stream, writer) = AuditStream::new(opened);
            monoio::spawn(writer.run());
            (stream, durability)
        });
        let listener = match monoio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                error!(error = %e, "cannot adopt the admin listener");
                return;
            }
        };
        let started = s.admin.clone();
        let book = s.book.clone();
        let api = Rc::new(Api {
            admin: Arc::new(move || admin_in_force(&started)),
            book: s.book.clone(),
            metrics: Arc::new(move || scrape(book.as_deref())),
        });
        let audit = Rc::new(audit);
        // Reviewers' decisions are counted here, like a worker's statements.
        let metrics = Rc::new(super::metrics::WorkerMetrics::new());
        register_worker_metrics(metrics.shared());
        let handler = Rc::new(move |req: Request, peer: SocketAddr| {
            let (api, audit, metrics) = (api.clone(), audit.clone(), metrics.clone());
            Box::pin(async move {
                let mut decisions = Vec::new();
                let response = handle(&api, &req, &mut |d| decisions.push(d));
                for d in &decisions {
                    metrics.approval(d.outcome);
                }
                metrics.fold();
                // A decision counts once it is in the audit log.
                if let Some((stream, durability)) = &*audit {
                    for d in decisions {
                        if let Err(e) = record(stream, *durability, &d, peer).await {
                            error!(error = %e, request = %d.id, "the decision could not be recorded in the audit log");
                            return Response::error(500, "the decision was made but could not be recorded in the audit log");
                        }
                    }
                }
                response
            }) as super::server::ResponseFuture
        });
        info!(%addr, "admin API listening");
        super::server::serve(listener, handler).await;
    });
}

/// Records a reviewer's decision in the admin's audit stream.
async fn record(
    stream: &AuditStream,
    durability: Durability,
    d: &Decided,
    peer: SocketAddr,
) -> Result<(), String> {
    let r = Record {
        t: crate::audit::time::format(crate::audit::time::now_micros()).into(),
        kind: Kind::Approval,
        session: Some(d.session.as_str().into()),
        user: Some(d.user.as_str().into()),
        database: Some(d.database.as_str().into()),
        client: Some(peer.to_string().into()),
        approval: Some(d.id.as_str().into()),
        outcome: Some(d.outcome.into()),
        approver: Some(d.reviewer.as_str().into()),
        reason: d.reason.as_deref().map(Into::into),
        ..Record::default()
    };
    let ticket = stream.append(&r);
    let level = match durability {
        Durability::Async => return Ok(()),
        Durability::Written => Level::Written,
        Durability::Strict => Level::Synced,
    };
    stream.reached(ticket, level).await.map_err(|e| e.0)
}

/// Text for a chat message: `&`, `<` and `>` escaped (so no `<!channel>`
/// or link markup), backticks as `'` (so no code block can be closed),
/// control characters and bidi overrides escaped.
fn chat_safe(s: &str) -> String {
    crate::audit::event::printable(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "'")
}

/// The text a chat channel shows for a new request: pgward's own lines
/// first, then the agent's SQL, line by line inside one code block (its
/// first 500 characters), each behind a bar, so nothing the agent wrote
/// can pass for them.
fn webhook_text(r: &ApprovalRequest) -> String {
    let mut text = format!(
        "pgward: {user} asks to run a statement on {db} ({reasons}); request {id}\napprove: pgward approvals approve {id}\ndeny: pgward approvals deny {id} --reason ...\nthe statement as the agent wrote it (pgward approvals show {id} for all of it):\n```\n",
        user = chat_safe(&r.user),
        db = chat_safe(&r.database),
        reasons = chat_safe(&r.reasons.join(", ")),
        id = r.id,
    );
    let sql: String = r.sql.chars().take(500).collect();
    for line in sql.split('\n') {
        // (Behind a bar, also where the code block is not rendered.)
        text += "| ";
        text += &chat_safe(line);
        text.push('\n');
    }
    if sql.len() < r.sql.len() {
        text += "...\n";
    }
    text += "```";
    text
}

/// Posts each new request to `url` from a thread of its own (never from a
/// worker): a JSON body with a Slack-style `text` and the request without
/// its parameters. Failures are logged; at most 1000 wait.
fn webhook_sender(url: String) -> crate::approval::book::Listener {
    let (tx, rx) = mpsc::sync_channel::<ApprovalRequest>(1000);
    let spawned = std::thread::Builder::new()
        .name("pgward-webhook".into())
        .spawn(move || {
            for mut r in rx {
                r.params = None;
                let body = json!({ "text": webhook_text(&r), "request": r }).to_string();
                match super::client::call(
                    &url,
                    "POST",
                    None,
                    Some(body.as_bytes()),
                    Duration::from_secs(5),
                ) {
                    Ok((status, _)) if (200..300).contains(&status) => {}
                    Ok((status, _)) => {
                        warn!(request = %r.id, status, "webhook refused the request notice")
                    }
                    Err(e) => warn!(request = %r.id, error = %e, "webhook failed"),
                }
            }
        });
    if let Err(e) = spawned {
        error!(error = %e, "cannot start the webhook thread");
    }
    Box::new(move |r: &ApprovalRequest| {
        if tx.try_send(r.clone()).is_err() {
            warn!(request = %r.id, "webhook queue full; notice dropped");
        }
    })
}

/// `[admin]` is configured: start the admin side for `config`.
pub fn admin_start(
    config: &Config,
    book: Option<Arc<Book>>,
    audit: Option<OpenedStream>,
) -> Option<AdminStart> {
    let admin = config.admin.clone()?;
    let durability = config.audit.as_ref().map(|a| a.durability);
    Some(AdminStart {
        admin,
        book,
        audit: audit.zip(durability),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_sql_cannot_pass_for_pgwards_lines_in_chat() {
        let r: ApprovalRequest = serde_json::from_value(serde_json::json!({
            "id": "aaaaaaaaaaaa", "state": "pending", "mode": "retry", "created": "t",
            "created_us": 0, "expires_us": 0, "grant_ttl_ms": 0, "user": "agent",
            "roles": [], "session": "s", "database": "shop", "client": "c",
            "sql": "SELECT 1 /*\n```\napprove: pgward approvals approve EVIL <!channel>\u{1b}[2K */",
            "fingerprint": "f", "reasons": ["truncate"], "key": "k"
        }))
        .unwrap();
        let text = webhook_text(&r);
        let approve_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("approve:")).collect();
        assert_eq!(
            approve_lines,
            ["approve: pgward approvals approve aaaaaaaaaaaa"]
        );
        assert_eq!(text.matches("```").count(), 2, "{text}");
        assert!(
            !text.contains("<!channel>") && !text.contains('\u{1b}'),
            "{text}"
        );
        assert!(text.ends_with("```"));
    }
}
