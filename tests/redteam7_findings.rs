//! Findings of the seventh red-team pass (pgward's records of statement and
//! portal names against the server's), each a live repro before its fix: a
//! name the server held that pgward had forgotten, with a Parse or Bind of it
//! in flight standing for it across a Sync.

mod common;

use common::raw::{bind, execute, frame, parse, rows, sync, Msg, Raw};
use common::*;

const ROLES: &str = r#"
[roles.prep]
operations = ["select", "prepare", "discard"]
read = ["public.*", "!public.api_keys"]

[masks]
"public.customers.email" = "email"
"public.customers.ssn" = "redact"
"#;

fn session() -> (Gateway, Raw) {
    let gw = Gateway::with_roles("prep", ROLES);
    let r = gw.raw("shop");
    (gw, r)
}

/// Bind of `statement` to the unnamed portal with one text parameter.
fn bind_text(statement: &str, value: &str) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend(statement.as_bytes());
    body.extend([0, 0, 0, 0, 1]);
    body.extend((value.len() as i32).to_be_bytes());
    body.extend(value.as_bytes());
    body.extend([0, 0]);
    frame(b'B', &body)
}

/// Sends the messages and reads through `syncs` ReadyForQuery.
fn exchange(r: &mut Raw, messages: &[Vec<u8>], syncs: usize) -> Vec<Msg> {
    r.send(&messages.concat());
    (0..syncs).flat_map(|_| r.replies()).collect()
}

/// A Parse of `s` the server refuses (the name is taken), then, across its
/// Sync, a Bind of `s` asking for the data directory.
fn bind_behind_a_refused_parse(r: &mut Raw) -> Vec<Msg> {
    exchange(
        r,
        &[
            parse("s", "SELECT $1::text"),
            sync(),
            bind_text("s", "data_directory"),
            execute("", 0),
            sync(),
        ],
        2,
    )
}

fn assert_no_data_directory(reply: &[Msg]) {
    let (cells, _) = rows(reply);
    assert!(
        !cells.iter().any(|c| c.starts_with('/')),
        "a secret setting came back: {cells:?}"
    );
}

// F3: a statement whose record was a union (held and in flight) applied the
// DEALLOCATE of one candidate: pgward forgot `s` while the server kept it.

#[test]
fn f3_a_drop_counts_only_if_every_candidate_makes_it() {
    let (_gw, mut r) = session();
    r.extended(&[parse("s", "SELECT current_setting($1)"), sync()]);
    r.extended(&[parse("", "DEALLOCATE s"), sync()]);
    exchange(
        &mut r,
        &[
            parse("", "SELECT 1"),
            sync(),
            bind("", ""),
            execute("", 0),
            sync(),
        ],
        2,
    );
    assert_no_data_directory(&bind_behind_a_refused_parse(&mut r));
}

// F5: DISCARD PLANS counted as DISCARD ALL.

#[test]
fn f5_only_discard_all_drops_prepared_statements() {
    let (_gw, mut r) = session();
    r.extended(&[parse("s", "SELECT current_setting($1)"), sync()]);
    let (_, err) = rows(&r.query("DISCARD PLANS"));
    assert_eq!(err, None);
    assert_no_data_directory(&bind_behind_a_refused_parse(&mut r));
}

// F6: DEALLOCATE ALL keeps the server's unnamed statement; pgward forgot it.

#[test]
fn f6_deallocate_all_keeps_the_unnamed_statement() {
    let (_gw, mut r) = session();
    r.extended(&[
        parse("", "SELECT current_setting($1) AS v"),
        parse("d", "DEALLOCATE ALL"),
        bind("dp", "d"),
        execute("dp", 0),
        sync(),
    ]);
    r.extended(&[parse("e", "SELECT 1"), sync()]);
    let reply = exchange(
        &mut r,
        &[
            parse("e", "SELECT 1"),
            parse("", "SELECT $1::text AS v"),
            sync(),
            bind_text("", "data_directory"),
            execute("", 0),
            sync(),
        ],
        2,
    );
    assert_no_data_directory(&reply);
}

// F1: a Query that failed after an explicit COMMIT had committed a WITH HOLD
// cursor; pgward recorded none of the Query's cursors.

#[test]
fn f1_a_failed_query_still_declares_its_cursors() {
    let (_gw, mut r) = session();
    r.query("BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT email, ssn FROM customers ORDER BY id; COMMIT; SELECT 1/0");
    let reply = exchange(
        &mut r,
        &[
            parse("h", "SELECT 1 AS a, 2 AS b"),
            bind("c", "h"),
            sync(),
            execute("c", 3),
            sync(),
        ],
        2,
    );
    let secrets = cluster().sql("shop", "SELECT ssn FROM customers ORDER BY id LIMIT 1");
    let (cells, _) = rows(&reply);
    assert!(!cells.contains(&secrets), "clear SSN: {cells:?}");
    r.query("CLOSE ALL");
}
