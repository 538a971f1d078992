//! The command line: `check` accepts the shipped example and rejects bad
//! configs with the file and key named; `scram-verifier` makes usable verifiers.

use std::io::Write;
use std::process::{Command, Stdio};

fn pgward(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(args)
        .env("SHOP_DB_PASSWORD", "x")
        .output()
        .unwrap()
}

#[test]
fn the_example_config_checks_clean() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pgward.toml");
    let out = pgward(&["check", "--config", example]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 database(s), 1 user(s)"));
}

#[test]
fn bad_configs_exit_nonzero_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pgward.toml"))
            .unwrap();
    for (from, to, key) in [
        (
            "sslmode = \"prefer\"",
            "sslmode = \"maybe\"",
            "databases.shop.sslmode",
        ),
        ("workers = 2 ", "workers = \"two\" ", "server.workers"),
        ("port = 5432", "port = 99999", "databases.shop.port"),
        (
            "listen = [\"127.0.0.1:6432\"]",
            "listen = [\"localhost\"]",
            "server.listen[0]",
        ),
        (
            "# tls_cert = \"server.crt\"",
            "tls_cert = \"server.crt\"",
            "server.tls_key",
        ),
    ] {
        assert!(example.contains(from), "{from}");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, example.replace(from, to)).unwrap();
        let out = pgward(&["check", "--config", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains(key), "expected {key} in: {err}");
    }
    let out = pgward(&["check", "--config", "/nonexistent/pgward.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn scram_verifier_prints_a_parsable_verifier() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .arg("scram-verifier")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hunter2\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let v = pgward::auth::scram::Verifier::parse(text.trim()).unwrap();
    assert_eq!(
        v,
        pgward::auth::scram::Verifier::from_password("hunter2", &v.salt, v.iterations)
    );
}

#[test]
fn explain_shows_classification_and_verdict() {
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policy.toml");
    let out = pgward(&[
        "explain",
        "--config",
        policy,
        "--role",
        "reader",
        "SELECT * FROM api_keys",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reads:      api_keys"), "{text}");
    assert!(
        text.contains("message:    pgward: role reader may not read public.api_keys"),
        "{text}"
    );

    let out = pgward(&[
        "explain",
        "--config",
        policy,
        "--role",
        "writer",
        "--json",
        "UPDATE orders SET status = 'x'",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"]["verdict"], "allow");
    assert_eq!(v["classification"]["writes"][0], "orders");
    assert_eq!(v["classification"]["operations"][0], "update");

    let out = pgward(&[
        "explain", "--config", policy, "--role", "nobody", "SELECT 1",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policy.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["explain", "--config", example, "--role", "reader", "--json"])
        .arg("SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before pgward writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "{:?} {err}",
        out.status
    );
}

#[test]
fn explain_decides_with_the_masks_and_names_masked_columns() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pgward.toml");
    std::fs::write(
        &config,
        "[roles.reader]\noperations = [\"select\"]\nread = [\"public.*\"]\n\n[masks]\n\"public.customers.email\" = \"email\"\n",
    )
    .unwrap();
    let explain = |sql: &str| {
        pgward(&[
            "explain",
            "--config",
            config.to_str().unwrap(),
            "--role",
            "reader",
            sql,
        ])
    };
    let out = explain("SELECT c.email AS e, city FROM customers c");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("masked:     public.customers.email (email)"),
        "{text}"
    );
    let out = explain("SELECT upper(email) FROM customers");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("masked column"));
    let out = explain("SELEC 1");
    assert!(String::from_utf8_lossy(&out.stdout).contains("pgward: syntax error"));
}
