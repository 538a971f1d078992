//! Reading the audit log in tests: records as JSON values, a session's
//! records once it ended, `pgward audit verify`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every record in the directory, stream by stream, in order.
pub fn records(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
                .collect::<Vec<Value>>()
        })
        .collect()
}

/// The records of the sessions matching `pick`, once its disconnect is written.
pub fn session_records(dir: &Path, pick: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = records(dir);
        let mut sessions: Vec<String> = all
            .iter()
            .filter(|r| r["kind"] == "connect")
            .map(|r| r["session"].as_str().unwrap().to_string())
            .collect();
        sessions.dedup();
        for s in sessions {
            let mine: Vec<Value> = all.iter().filter(|r| r["session"] == s).cloned().collect();
            // (The admin thread's records of the session's requests are
            // in a stream of their own, so the disconnect may not be last.)
            if pick(&mine) && mine.iter().any(|r| r["kind"] == "disconnect") {
                return mine;
            }
        }
        assert!(Instant::now() < deadline, "no such session in {all:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every record as one text (to search for what must not be there).
pub fn all_text(dir: &Path) -> String {
    records(dir)
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `pgward audit verify` on `dir`: (exit code, output).
pub fn verify(dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["audit", "verify", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}
