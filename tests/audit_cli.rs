//! `pgward audit verify`, `show` and `replay` on a generated directory:
//! exit statuses and what they print.

use std::process::{Command, Output};

use pgward::audit::{sample, segment};

fn pgward(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for stream in 0..2 {
        let lines = sample::stream_lines(stream, 2, 1_796_000_000_000_000, 2, 5);
        sample::write_stream(dir.path(), stream, &lines, 5).unwrap();
    }
    dir
}

#[test]
fn verify_exits_0_intact_1_broken_2_unreadable() {
    let dir = log();
    let d = dir.path().to_str().unwrap();
    let out = pgward(&["audit", "verify", "--dir", d]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("stream 0: intact, 23 record(s) in 5 segment(s), last seq 23, head "),
        "{stdout}"
    );
    assert!(stdout.contains("stream 1: intact"), "{stdout}");
    assert!(
        stdout.contains("records/s") && stdout.contains("head hashes somewhere else"),
        "{stdout}"
    );

    let path = dir.path().join(segment::name(1, 6));
    let mut bytes = std::fs::read(&path).unwrap();
    let second = memchr::memchr(b'\n', &bytes).unwrap() + 100;
    bytes[second] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let out = pgward(&["audit", "verify", "--dir", d]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let expected = format!(
        "stream 1: BROKEN after 6 intact record(s): {} line 2: ",
        path.display()
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(stdout.contains("was edited"), "{stdout}");

    let out = pgward(&["audit", "verify", "--dir", "/nonexistent/audit"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("/nonexistent/audit: cannot read"));
    let empty = tempfile::tempdir().unwrap();
    let out = pgward(&["audit", "verify", "--dir", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("no audit segments"));
}

#[test]
fn show_prints_a_table_or_json_lines() {
    let dir = log();
    let d = dir.path().to_str().unwrap();
    let out = pgward(&["audit", "show", "--dir", d, "--verdict", "denied"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines[0].ends_with("SQL"),
        "{stdout}"
    );
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(lines[1..]
        .iter()
        .all(|l| l.contains(" denied ") && l.contains("42501")));

    let out = pgward(&["audit", "show", "--dir", d, "--session", "w0-s1", "--json"]);
    let (stdout, _) = text(&out);
    assert_eq!(stdout.lines().count(), 11, "{stdout}");
    for line in stdout.lines() {
        pgward::audit::chain::open(line.as_bytes()).unwrap();
        assert!(line.contains(r#""session":"w0-s1""#));
    }
    let out = pgward(&[
        "audit",
        "show",
        "--dir",
        d,
        "--since",
        "2026-12-01T17:00:00+01:00",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = pgward(&["audit", "show", "--dir", d, "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("is not a time"));
}

#[test]
fn replay_prints_a_timeline_or_exits_1() {
    let dir = log();
    let d = dir.path().to_str().unwrap();
    let out = pgward(&["audit", "replay", "--dir", d, "--session", "w1-s0"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with("session w1-s0: user agent"), "{stdout}");
    assert!(stdout.contains("#5 denied"), "{stdout}");
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .contains("disconnect: 5 statement(s)"),
        "{stdout}"
    );
    let out = pgward(&["audit", "replay", "--dir", d, "--session", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("not in"));
}

#[test]
fn show_follow_prints_records_appended_in_a_new_segment() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let lines = sample::stream_lines(0, 1, 1_796_000_000_000_000, 2, 3);
    let split = lines
        .iter()
        .position(|l| String::from_utf8_lossy(l).contains("w0-s1"))
        .unwrap();
    sample::write_stream(dir.path(), 0, &lines[..split], 1000).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["audit", "show", "--json", "--follow", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("--follow never printed {needle}"),
            }
        }
    };
    wait_for("\"w0-s0\"");
    // The rest of the stream arrives as the next segment, as the writer
    // rotates.
    let rest: Vec<u8> = lines[split..].concat();
    std::fs::write(dir.path().join(segment::name(0, split as u64 + 1)), rest).unwrap();
    wait_for("\"w0-s1\"");
    child.kill().unwrap();
    child.wait().unwrap();
}
