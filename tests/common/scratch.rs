//! A scratch copy of examples/shop.sql with logins of its own for the example
//! roles, and a config naming them, for tests of provisioned logins; dropped
//! on drop.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::*;

const POLICY: &str = include_str!("../../examples/policy.toml");

/// A scratch database loaded with examples/shop.sql, three logins for the
/// example roles, and a config naming them; all dropped on drop.
pub struct Scratch {
    pub db: String,
    pub reader: String,
    pub writer: String,
    pub migrator: String,
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let c = cluster();
        // Names end in the process id, so tests comparing catalog listings
        // with the server's leave them out (common::without_test_objects).
        let pid = std::process::id();
        let mut s = Scratch {
            db: format!("prov_{tag}_{pid}"),
            reader: format!("prov_reader_{tag}_{pid}"),
            writer: format!("prov_writer_{tag}_{pid}"),
            migrator: format!("prov_migrator_{tag}_{pid}"),
            config: PathBuf::new(),
            _dir: tempfile::tempdir().unwrap(),
        };
        s.drop_all();
        c.sql("postgres", &format!("CREATE DATABASE {}", s.db));
        let load = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                &c.direct_dsn(&s.db),
                "-f",
            ])
            .arg(repo_path("examples/shop.sql"))
            .output()
            .unwrap();
        assert!(load.status.success(), "loading shop.sql: {}", stderr(&load));
        let config = s._dir.path().join("pgward.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = [\"127.0.0.1:{}\"]\n\n{}[databases.scratch.logins]\n{}\n{POLICY}",
                free_port(),
                c.database_section("scratch", &s.db),
                s.logins_toml()
            ),
        )
        .unwrap();
        s.config = config;
        s
    }

    /// `[databases.NAME.logins]` entries for the three roles.
    pub fn logins_toml(&self) -> String {
        format!(
            "reader = {{ user = \"{}\", password = \"reader-pw\" }}\nwriter = {{ user = \"{}\", password = \"writer-pw\" }}\nmigrator = {{ user = \"{}\", password = \"migrator-pw\" }}\n",
            self.reader, self.writer, self.migrator
        )
    }

    pub fn logins(&self) -> [(&str, &str); 3] {
        [
            ("reader", self.reader.as_str()),
            ("writer", self.writer.as_str()),
            ("migrator", self.migrator.as_str()),
        ]
    }

    /// Runs `pgward provision` on the scratch database with `args`.
    pub fn provision(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_pgward"))
            .args(["provision", "--config"])
            .arg(&self.config)
            .args(["--database", "scratch"])
            .args(args)
            .env("PGWARD_TEST_SVC_PASSWORD", &cluster().svc_password)
            .env_remove("PGWARD_ADMIN_DSN")
            .output()
            .unwrap()
    }

    pub fn apply(&self) -> Output {
        let out = self.provision(&["--apply", "--admin-dsn", &cluster().direct_dsn(&self.db)]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "apply: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        out
    }

    pub fn sql(&self, sql: &str) -> String {
        cluster().sql(&self.db, sql)
    }

    pub fn drop_all(&self) {
        let c = cluster();
        c.sql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
        );
        for (_, login) in self.logins() {
            c.sql("postgres", &format!("DROP ROLE IF EXISTS {login}"));
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.drop_all();
    }
}
