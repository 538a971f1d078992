//! Differential oracle between the two walls: statements (the policy
//! corpus's, and mutations of them) run through pgward as each example role
//! on a database whose logins `pgward provision` gave exactly the policy's
//! grants. A statement pgward lets through that the server then refuses for
//! privileges (its own 42501) is a hole in the policy: the test prints it.
//! Fixed inputs and a bounded count; `loadtest/privilege-oracle` runs more.

mod common;

use common::raw::Msg;
use common::scratch::Scratch;
use common::*;

/// Every string literal pair `("sql", "verdict")` of the policy corpus.
fn corpus() -> Vec<String> {
    let text = include_str!("policy_corpus.rs");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("(\"") {
        rest = &rest[i + 1..];
        let Some((sql, after)) = rust_string(rest) else {
            continue;
        };
        let after = after.trim_start();
        if let Some(tail) = after.strip_prefix(',') {
            let tail = tail.trim_start();
            if ["\"allow\"", "\"deny\"", "\"error\""]
                .iter()
                .any(|v| tail.starts_with(v))
            {
                out.push(sql);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Reads a Rust string literal at the start of `s` (which begins with `"`).
fn rust_string(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                '0' => out.push('\0'),
                '\n' => {
                    while let Some((_, w)) = chars.clone().next() {
                        if w.is_whitespace() {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            },
            c => out.push(c),
        }
    }
    None
}

/// The statement and forms of it the grammar allows around a query.
fn variants(sql: &str) -> Vec<String> {
    let mut out = vec![sql.to_string()];
    let lower = sql.trim_start().to_ascii_lowercase();
    let query =
        (lower.starts_with("select") || lower.starts_with("with") || lower.starts_with("table"))
            && !sql.contains(';');
    if query {
        out.push(format!("SELECT * FROM ({sql}) AS oracle_s"));
        out.push(format!("WITH oracle_w AS ({sql}) SELECT * FROM oracle_w"));
        out.push(format!("EXPLAIN {sql}"));
    }
    out
}

/// Statements the oracle leaves out: they end the transaction it rolls back,
/// wait for COPY data, sleep, or end the session.
fn runnable(sql: &str) -> bool {
    let l = sql.to_ascii_lowercase();
    ![
        "commit",
        "rollback",
        "begin",
        "end",
        "copy",
        "sleep",
        "terminate",
        "cancel",
        "prepare transaction",
        "abort",
    ]
    .iter()
    .any(|w| l.contains(w))
}

/// `count` statements combining two corpus queries (xorshift, fixed seed).
fn mutations(statements: &[String], count: usize) -> Vec<String> {
    let queries: Vec<&String> = statements
        .iter()
        .filter(|q| q.trim_start().to_ascii_lowercase().starts_with("select") && !q.contains(';'))
        .collect();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let a = queries[(next() % queries.len() as u64) as usize];
            let b = queries[(next() % queries.len() as u64) as usize];
            match next() % 4 {
                0 => format!("SELECT * FROM ({a}) x, LATERAL ({b}) y"),
                1 => format!("SELECT EXISTS ({a}), ({b} LIMIT 1) IS NULL"),
                2 => format!("WITH x AS ({a}), y AS ({b}) SELECT * FROM x, y"),
                _ => format!("SELECT * FROM ({a}) x WHERE EXISTS ({b})"),
            }
        })
        .collect()
}

fn error(reply: &[Msg]) -> Option<(String, String)> {
    reply.iter().find(|m| m.tag == b'E').map(|m| {
        (
            m.field(b'C').unwrap_or_default(),
            m.field(b'M').unwrap_or_default(),
        )
    })
}

#[test]
fn what_pgward_allows_the_provisioned_login_may_do() {
    let s = Scratch::new("oracle");
    s.apply();
    let mut statements: Vec<String> = corpus().into_iter().filter(|q| runnable(q)).collect();
    assert!(
        statements.len() > 200,
        "only {} corpus statements",
        statements.len()
    );
    // More, for a longer run (loadtest/privilege-oracle): pairs of queries
    // combined where the grammar allows, from a fixed seed.
    let extra: usize = std::env::var("PGWARD_ORACLE_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    statements.extend(mutations(&statements, extra));
    let c = cluster();
    let mut holes = Vec::new();
    let mut allowed = 0;
    for role in ["reader", "writer", "migrator"] {
        let gw = Gateway::start(GatewayOptions {
            role,
            roles: include_str!("../examples/policy.toml").to_string(),
            extra_config: format!(
                "{}[databases.scratch.logins]\n{}",
                c.database_section("scratch", &s.db),
                s.logins_toml()
            ),
            ..Default::default()
        });
        let mut r = gw.raw("scratch");
        for sql in &statements {
            for v in variants(sql) {
                r.query("BEGIN");
                let reply = r.query(&v);
                r.query("ROLLBACK");
                match error(&reply) {
                    None => allowed += 1,
                    Some((code, message)) if code == "42501" && !message.starts_with("pgward") => {
                        // Ownership is the one thing provisioning never hands
                        // out (docs/provision.md): DDL on existing tables.
                        if !message.starts_with("must be owner") {
                            holes.push(format!("{role}: {v}\n    server: {message}"));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
    }
    assert!(
        allowed > 100,
        "only {allowed} statements allowed: the oracle tested little"
    );
    assert!(
        holes.is_empty(),
        "pgward allowed what the provisioned login may not do:\n{}",
        holes.join("\n")
    );
}
