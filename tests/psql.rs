//! psql through pgward: queries, multi-statement messages, \copy both ways,
//! startup parameters, TLS on both legs and login failures.

mod common;

use common::*;

#[test]
fn simple_and_multi_statement_queries_match_direct() {
    let gw = Gateway::start(GatewayOptions::default());
    let sql = "SELECT id, email FROM customers ORDER BY id";
    let through = psql(&gw.dsn("shop"), &["-c", sql], "");
    assert!(through.status.success(), "{}", stderr(&through));
    assert_eq!(stdout(&through), cluster().sql("shop", sql));
    assert!(stdout(&through).lines().count() >= 5);

    let multi = psql(
        &gw.dsn("shop"),
        &[
            "-c",
            "SELECT 1; SELECT 'two'; SELECT count(*) FROM products",
        ],
        "",
    );
    let lines: Vec<String> = stdout(&multi).lines().map(str::to_string).collect();
    let products = cluster().sql("shop", "SELECT count(*) FROM products");
    assert_eq!(lines, vec!["1".to_string(), "two".to_string(), products]);

    // An error in the middle of a script leaves the session usable.
    let script = "SELECT 1/0;\nSELECT 'after';\n";
    let out = psql(&gw.dsn("shop"), &["-v", "ON_ERROR_STOP=0"], script);
    assert!(
        stderr(&out).contains("division by zero"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "after");
}

#[test]
fn copy_both_ways() {
    let gw = Gateway::start(GatewayOptions::default());
    let table = format!("copy_test_{}", std::process::id());
    cluster().sql(
        "shop",
        &format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int, name text)"),
    );
    let input: String = (1..=500).map(|i| format!("{i}\tname {i}\n")).collect();
    let out = psql(
        &gw.dsn("shop"),
        &["-c", &format!("\\copy {table} FROM STDIN")],
        &input,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        cluster().sql("shop", &format!("SELECT count(*), sum(id) FROM {table}")),
        "500|125250"
    );

    let out = psql(
        &gw.dsn("shop"),
        &[
            "-c",
            &format!("\\copy (SELECT * FROM {table} ORDER BY id) TO STDOUT"),
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), input);
    cluster().sql("shop", &format!("DROP TABLE {table}"));
}

#[test]
fn startup_parameters_reach_the_upstream() {
    let gw = Gateway::start(GatewayOptions::default());
    let dsn = format!(
        "{} application_name=agent-007 options='-c search_path=internal,public -c statement_timeout=1234'",
        gw.dsn("shop")
    );
    let out = psql(
        &dsn,
        &["-c", "SELECT current_setting('application_name'), current_setting('search_path'), current_setting('statement_timeout'), current_user"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("agent-007|internal,public|1234ms|{}", cluster().svc_user)
    );
}

#[test]
fn tls_on_both_legs_with_verification() {
    let gw = Gateway::start(GatewayOptions {
        tls: true,
        upstream_sslmode: "verify-full",
        ..Default::default()
    });
    let ca = cluster().tls_dir.join("ca.crt");
    let dsn = format!(
        "host=localhost port={} user=agent password={AGENT_PASSWORD} dbname=shop sslmode=verify-full sslrootcert={}",
        gw.port,
        ca.display()
    );
    let out = psql(
        &dsn,
        &[
            "-c",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ],
        "",
    );
    assert!(out.status.success(), "{}\n{}", stderr(&out), gw.log_text());
    assert_eq!(stdout(&out), "t", "the upstream leg must be encrypted");
    // The client leg is TLS too: psql refuses verify-full otherwise, and the
    // gateway says so in its log.
    assert!(gw.log_text().contains("tls=true"), "{}", gw.log_text());

    // Channel binding (SCRAM-SHA-256-PLUS with tls-server-end-point) works too.
    let out = psql(
        &format!("{dsn} channel_binding=require"),
        &["-c", "SELECT 'bound'"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "bound");
    let wrong = dsn.replace(AGENT_PASSWORD, "wrong-password");
    let out = psql(
        &format!("{wrong} channel_binding=require"),
        &["-c", "SELECT 1"],
        "",
    );
    assert!(
        stderr(&out).contains("password authentication failed"),
        "{}",
        stderr(&out)
    );

    // A client that insists on TLS to a gateway without it is refused by libpq.
    let plain = Gateway::start(GatewayOptions::default());
    let out = psql(
        &format!(
            "{} sslmode=require",
            plain.dsn("shop").replace(" sslmode=disable", "")
        ),
        &["-c", "SELECT 1"],
        "",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not support SSL"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn upstream_sslmode_require_and_prefer_encrypt() {
    for mode in ["require", "prefer", "verify-ca"] {
        let gw = Gateway::start(GatewayOptions {
            upstream_sslmode: mode,
            ..Default::default()
        });
        let out = psql(
            &gw.dsn("shop"),
            &[
                "-c",
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            ],
            "",
        );
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        assert_eq!(stdout(&out), "t", "{mode}");
    }
}

#[test]
fn login_failures_have_the_right_sqlstate() {
    let gw = Gateway::start(GatewayOptions::default());
    let cases = [
        (
            format!(
                "host=127.0.0.1 port={} user=agent password=wrong dbname=shop sslmode=disable",
                gw.port
            ),
            "password authentication failed for user \"agent\"",
        ),
        (
            format!(
                "host=127.0.0.1 port={} user=nobody password=x dbname=shop sslmode=disable",
                gw.port
            ),
            "password authentication failed for user \"nobody\"",
        ),
        (gw.dsn("nosuchdb"), "database \"nosuchdb\" does not exist"),
        (
            format!("{} replication=database", gw.dsn("shop")),
            "replication connections are not supported",
        ),
    ];
    for (dsn, expected) in cases {
        let out = psql(&dsn, &["-c", "SELECT 1"], "");
        assert!(!out.status.success(), "{dsn} should fail");
        assert!(stderr(&out).contains(expected), "{dsn}: {}", stderr(&out));
    }
    // The gateway is still serving.
    let ok = psql(&gw.dsn("shop"), &["-c", "SELECT 42"], "");
    assert_eq!(stdout(&ok), "42");
}

#[test]
fn dead_upstream_gives_a_clear_error() {
    let gw = Gateway::start(GatewayOptions {
        upstream_port: Some(free_port()),
        ..Default::default()
    });
    let out = psql(&gw.dsn("shop"), &["-c", "SELECT 1"], "");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("pgward: cannot open a session on database \"shop\""),
        "{err}"
    );
    assert!(err.contains("cannot be reached"), "{err}");
    // Agents are never told where the database is or who pgward logs in as;
    // the operator reads it in pgward's log.
    let port = gw_upstream_port(&gw);
    assert!(
        !err.contains(&port) && !err.contains(&cluster().svc_user),
        "{err}"
    );
    assert!(gw.log_text().contains("cannot reach"), "{}", gw.log_text());
}

/// The upstream port in a gateway's config.
fn gw_upstream_port(gw: &Gateway) -> String {
    let config = std::fs::read_to_string(gw.dir.path().join("pgward.toml")).unwrap();
    config
        .lines()
        .find_map(|l| l.strip_prefix("port = "))
        .unwrap()
        .to_string()
}

#[test]
fn a_second_pgward_on_the_same_address_fails() {
    let gw = Gateway::start(GatewayOptions::default());
    let config = gw.dir.path().join("pgward.toml");
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("PGWARD_TEST_SVC_PASSWORD", &cluster().svc_password)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let Some(status) = status else {
        let _ = second.kill();
        panic!("a second pgward started on the same address");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("address already in use"), "{err}");
    // The first one still serves.
    let ok = psql(&gw.dsn("shop"), &["-c", "SELECT 1"], "");
    assert_eq!(stdout(&ok), "1");
}
