//! Findings of the sixth red-team pass (client encodings, statement names,
//! refusals), each a live repro that returned masked values in clear or ran
//! a statement pgward never judged before its fix.

mod common;

use common::raw::{bind, execute, frame, parse, rows, sync, Msg, Raw};
use common::*;

const ROLES: &str = r#"
[roles.reader]
operations = ["select", "prepare"]
read = ["public.*", "!public.api_keys"]

[masks]
"public.customers.email" = "email"
"public.customers.ssn" = "redact"
"#;

fn session(params: &[(&str, &str)]) -> (Gateway, Raw) {
    let gw = Gateway::with_roles("reader", ROLES);
    let r = Raw::login_with(gw.port, "agent", AGENT_PASSWORD, params).unwrap();
    (gw, r)
}

/// No e-mail or SSN of the first customer in clear.
fn assert_no_secret(reply: &[Msg]) {
    let row = cluster().sql(
        "shop",
        "SELECT email || '|' || ssn FROM customers ORDER BY id LIMIT 1",
    );
    let (cells, _) = rows(reply);
    for secret in row.split('|') {
        assert!(
            !cells.iter().any(|c| c == secret),
            "{secret} in clear: {cells:?}"
        );
    }
}

/// A Parse with a raw (client-encoded) statement name.
fn parse_raw(name: &[u8], sql: &str) -> Vec<u8> {
    let mut body = name.to_vec();
    body.push(0);
    body.extend(sql.as_bytes());
    body.extend([0, 0, 0]);
    frame(b'P', &body)
}

// F1: in LATIN1 the server converts names to UTF-8 before cutting them at 63
// bytes; pgward cut the client's bytes, so two names were one to the server.

#[test]
fn f1_names_are_converted_before_they_are_cut() {
    let (_gw, mut r) = session(&[("database", "shop"), ("client_encoding", "LATIN1")]);
    let a = vec![0xe9u8; 32];
    let mut b = a.clone();
    b.push(b'x');
    r.extended(&[
        parse_raw(&a, "SELECT 1 AS id, 'x' AS email, 'y' AS ssn"),
        sync(),
    ]);
    let mut close = vec![b'S'];
    close.extend(&b);
    close.push(0);
    r.extended(&[frame(b'C', &close), sync()]);
    r.extended(&[
        parse_raw(&b, "SELECT id, email, ssn FROM customers ORDER BY id"),
        sync(),
    ]);
    let mut bind_a = vec![0u8];
    bind_a.extend(&a);
    bind_a.extend([0, 0, 0, 0, 0, 0, 0]);
    let reply = r.extended(&[frame(b'B', &bind_a), execute("", 3), sync()]);
    assert_no_secret(&reply);
}

// F2: a Bind across a Sync trusted an unnamed Parse in flight that the
// server skipped (an earlier message of its batch failed).

#[test]
fn f2_a_skipped_unnamed_parse_does_not_stand_for_the_held_one() {
    let (_gw, mut r) = session(&[("database", "shop")]);
    r.extended(&[
        parse("", "SELECT id, email, ssn FROM customers ORDER BY id"),
        sync(),
    ]);
    r.send(
        &[
            parse("z", "SELECT * FROM public.no_such_table"),
            parse("", "SELECT 1 AS id, 'x' AS email, 'y' AS ssn"),
            sync(),
            bind("", ""),
            execute("", 3),
            sync(),
        ]
        .concat(),
    );
    let replies = [r.replies(), r.replies()].concat();
    assert_no_secret(&replies);
}

// F3: a name SQL PREPARE made, bound behind a Parse of the same name that the
// server refuses (42P05): the server ran the unjudged statement.

#[test]
fn f3_statements_sql_prepare_made_are_never_bound() {
    let (_gw, mut r) = session(&[("database", "shop")]);
    let (_, err) = rows(&r.query("PREPARE s(text) AS SELECT current_setting($1)"));
    assert_eq!(err, None);
    // Bind of `s` with one text parameter, 'data_directory'.
    let bind_s = b"\0s\0\0\0\0\x01\0\0\0\x0edata_directory\0\0".to_vec();
    r.send(
        &[
            parse("s", "SELECT $1::text"),
            sync(),
            frame(b'B', &bind_s),
            execute("", 0),
            sync(),
        ]
        .concat(),
    );
    let replies = [r.replies(), r.replies()].concat();
    let (cells, _) = rows(&replies);
    assert!(
        !cells.iter().any(|c| c.starts_with('/')),
        "a data directory came back: {cells:?}"
    );
    let e = replies
        .iter()
        .filter(|m| m.tag == b'E')
        .filter_map(|m| m.field(b'M'))
        .collect::<Vec<_>>();
    assert!(e.iter().any(|m| m.contains("SQL PREPARE")), "{e:?}");
    // After DEALLOCATE the name is free again.
    r.query("DEALLOCATE s");
    let reply = r.extended(&[
        parse("s", "SELECT 1"),
        bind("", "s"),
        execute("", 0),
        sync(),
    ]);
    assert_eq!(rows(&reply), (vec!["1".to_string()], None));
}
