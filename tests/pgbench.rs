//! pgbench through pgward: initialise through the gateway, then run the default
//! TPC-B-like script in all three protocol modes with 8 clients.

mod common;

use std::process::Command;

use common::*;

fn pgbench(gw: &Gateway, args: &[&str]) -> std::process::Output {
    Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-p", &gw.port.to_string(), "-U", "agent"])
        .args(args)
        .arg("bench")
        .env("PGPASSWORD", AGENT_PASSWORD)
        .env("PGSSLMODE", "disable")
        .output()
        .expect("run pgbench")
}

fn field(text: &str, prefix: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in pgbench output:\n{text}"))
        .trim()
        .to_string()
}

#[test]
fn pgbench_runs_in_every_protocol_mode() {
    let gw = Gateway::start(GatewayOptions::default());
    let init = pgbench(&gw, &["-i", "-s", "1", "-q"]);
    assert!(init.status.success(), "pgbench -i: {}", stderr(&init));
    assert_eq!(
        cluster().sql("bench", "SELECT count(*) FROM pgbench_accounts"),
        "100000"
    );

    for mode in ["simple", "extended", "prepared"] {
        let out = pgbench(&gw, &["-M", mode, "-c", "8", "-j", "2", "-T", "3"]);
        let text = stdout(&out);
        assert!(
            out.status.success(),
            "pgbench -M {mode}: {}\n{}",
            stderr(&out),
            gw.log_text()
        );
        assert_eq!(field(&text, "query mode:"), mode);
        assert!(
            field(&text, "number of failed transactions:").starts_with("0 "),
            "-M {mode}: {text}"
        );
        let processed: u64 = field(&text, "number of transactions actually processed:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(processed > 100, "-M {mode} processed only {processed}");
    }
    // Every transaction left its row in the history table.
    let history: u64 = cluster()
        .sql("bench", "SELECT count(*) FROM pgbench_history")
        .parse()
        .unwrap();
    assert!(history > 300);
}
