//! The admin API's routes and who may call them: approvals (reviewers
//! decide, read tokens look), sessions (reviewers terminate), `/healthz`
//! and `/metrics`. Every call but `/healthz` needs a bearer token; a wrong
//! or missing one gets 401 and nothing else.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::http::{path_segments, Request, Response};
use crate::approval::{Book, DecideError};
use crate::auth::scram::ct_eq;
use crate::config::AdminConfig;

/// Who a token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The read-only token.
    Reader,
    /// A reviewer, by name.
    Reviewer(String),
}

/// The caller a request's bearer token names, if any.
pub fn caller(admin: &AdminConfig, req: &Request) -> Option<Caller> {
    let token = req.bearer()?;
    // Every token is compared (in constant time), whichever matches.
    let mut found = None;
    for r in &admin.reviewers {
        if ct_eq(r.token.as_bytes(), token.as_bytes()) {
            found = Some(Caller::Reviewer(r.name.clone()));
        }
    }
    if let Some(t) = &admin.token {
        if ct_eq(t.as_bytes(), token.as_bytes()) && found.is_none() {
            found = Some(Caller::Reader);
        }
    }
    found
}

/// A decision from the outside: who decided what, for the audit log.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The request.
    pub id: String,
    /// `approved` or `denied`.
    pub outcome: &'static str,
    /// The reviewer.
    pub reviewer: String,
    /// The reviewer's reason.
    pub reason: Option<String>,
    /// The user that asked.
    pub user: String,
    /// Its session.
    pub session: String,
    /// The database.
    pub database: String,
}

/// What the routes work with.
pub struct Api {
    /// The admin configuration in force (tokens, reviewers).
    pub admin: Arc<dyn Fn() -> Option<AdminConfig> + Send + Sync>,
    /// The approval book, when approvals are on.
    pub book: Option<Arc<Book>>,
    /// Renders `/metrics`.
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
}

/// What a route asks of the caller (beyond a valid token).
#[derive(PartialEq, Eq)]
enum Need {
    Nothing,
    Token,
    Reviewer,
}

fn unauthorized() -> Response {
    Response::error(401, "a valid bearer token is required")
        .with_header("WWW-Authenticate", "Bearer")
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    reason: Option<String>,
}

/// Answers one request; `decided` is told of every decision made.
pub fn handle(api: &Api, req: &Request, decided: &mut dyn FnMut(Decided)) -> Response {
    let segments = path_segments(&req.path);
    let route: (&str, &[&str]) = (req.method.as_str(), &segments);
    let need = match route {
        ("GET", ["healthz"]) => Need::Nothing,
        ("POST", ["v1", "approvals", _, _]) | ("POST", ["v1", "sessions", _, "terminate"]) => {
            Need::Reviewer
        }
        _ => Need::Token,
    };
    let admin = (api.admin)();
    let who = admin.as_ref().and_then(|a| caller(a, req));
    match (&need, &who) {
        (Need::Nothing, _) => {}
        (_, None) => return unauthorized(),
        (Need::Reviewer, Some(Caller::Reader)) => {
            return Response::error(403, "only a reviewer's token may decide or terminate")
        }
        _ => {}
    }
    let now = crate::audit::time::now_micros();
    match route {
        ("GET", ["healthz"]) => Response::text(200, "ok\n".into()),
        ("GET", ["metrics"]) => Response::prometheus((api.metrics)()),
        ("GET", ["v1", "approvals"]) => {
            let Some(book) = &api.book else {
                return Response::json(200, &json!({ "approvals": [] }));
            };
            let all = req.query.split('&').any(|q| q == "state=all");
            Response::json(200, &json!({ "approvals": book.list(all, now) }))
        }
        ("GET", ["v1", "approvals", id]) => match api.book.as_ref().and_then(|b| b.get(id, now)) {
            Some(r) => Response::json(200, &json!(r)),
            None => Response::error(404, "no such request"),
        },
        ("POST", ["v1", "approvals", id, verb @ ("approve" | "deny")]) => {
            let Some(Caller::Reviewer(reviewer)) = who else {
                return unauthorized();
            };
            let body: DecisionBody = if req.body.iter().all(u8::is_ascii_whitespace) {
                DecisionBody::default()
            } else {
                match serde_json::from_slice(&req.body) {
                    Ok(b) => b,
                    Err(e) => {
                        return Response::error(
                            400,
                            &format!("the body must be {{\"reason\": \"...\"}}: {e}"),
                        )
                    }
                }
            };
            let reason = body.reason.filter(|r| !r.trim().is_empty());
            let approve = *verb == "approve";
            if !approve && reason.is_none() {
                return Response::error(400, "a denial needs a reason (the client is told it)");
            }
            if reason.as_ref().is_some_and(|r| r.len() > 1000) {
                return Response::error(400, "the reason is longer than 1000 bytes");
            }
            let Some(book) = &api.book else {
                return Response::error(404, "no such request");
            };
            match book.decide(id, approve, &reviewer, reason.as_deref(), now) {
                Ok(r) => {
                    tracing::info!(request = %r.id, reviewer = %reviewer, outcome = r.state.name(), "approval decided");
                    decided(Decided {
                        id: r.id.clone(),
                        outcome: if approve { "approved" } else { "denied" },
                        reviewer,
                        reason,
                        user: r.user.clone(),
                        session: r.session.clone(),
                        database: r.database.clone(),
                    });
                    Response::json(200, &json!(r))
                }
                Err(e @ DecideError::NotFound) => Response::error(404, &e.to_string()),
                Err(e @ DecideError::NotPending(_)) => Response::error(409, &e.to_string()),
                Err(e @ DecideError::OwnRequest) => Response::error(403, &e.to_string()),
                Err(e @ DecideError::Store(_)) => Response::error(500, &e.to_string()),
            }
        }
        ("GET", ["v1", "sessions"]) => {
            Response::json(200, &json!({ "sessions": crate::proxy::registry::list() }))
        }
        ("POST", ["v1", "sessions", id, "terminate"]) => {
            if crate::proxy::registry::terminate(id) {
                tracing::info!(session = %id, by = ?who, "session terminated from the admin API");
                Response::json(200, &json!({ "terminated": id }))
            } else {
                Response::error(404, "no such session")
            }
        }
        (_, ["healthz"] | ["metrics"] | ["v1", "approvals", ..] | ["v1", "sessions", ..]) => {
            Response::error(405, "method not allowed")
        }
        _ => Response::error(404, "no such endpoint"),
    }
}
