//! Test harness: a real PostgreSQL cluster (scripts/pg-cluster, started once and
//! shared by every test binary) and pgward gateways started per test as child
//! processes with their own config on a free port.
#![allow(dead_code)]

pub mod audit;
pub mod raw;
pub mod scratch;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The shared upstream cluster.
pub struct Cluster {
    pub host: String,
    pub port: u16,
    pub super_user: String,
    pub super_password: String,
    pub svc_user: String,
    pub svc_password: String,
    pub tls_dir: PathBuf,
    pub socket_dir: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts (once) and returns the upstream cluster.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let out = Command::new(repo().join("scripts/pg-cluster"))
            .arg("start")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/pg-cluster");
        assert!(out.status.success(), "scripts/pg-cluster start failed");
        let text = String::from_utf8(out.stdout).unwrap();
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {k}=")))
                .unwrap_or_else(|| panic!("pg-cluster printed no {k}"))
                .to_string()
        };
        Cluster {
            host: get("PGWARD_PG_HOST"),
            port: get("PGWARD_PG_PORT").parse().unwrap(),
            super_user: get("PGWARD_PG_SUPERUSER"),
            super_password: get("PGWARD_PG_SUPERPASSWORD"),
            svc_user: get("PGWARD_PG_SVC_USER"),
            svc_password: get("PGWARD_PG_SVC_PASSWORD"),
            tls_dir: get("PGWARD_PG_TLS_DIR").into(),
            socket_dir: get("PGWARD_PG_SOCKET_DIR").into(),
        }
    })
}

impl Cluster {
    /// A `[databases.NAME]` section for pgward's config reaching `dbname`.
    pub fn database_section(&self, name: &str, dbname: &str) -> String {
        format!(
            "[databases.{name}]\ndbname = \"{dbname}\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\npassword_env = \"PGWARD_TEST_SVC_PASSWORD\"\nsslmode = \"disable\"\nconnect_timeout_secs = 3\n\n",
            self.host, self.port, self.svc_user
        )
    }

    /// A libpq DSN straight to the cluster as the service user.
    pub fn direct_dsn(&self, db: &str) -> String {
        format!(
            "host={} port={} user={} password={} dbname={db} sslmode=disable",
            self.host, self.port, self.svc_user, self.svc_password
        )
    }

    /// Runs SQL directly (as the service user) and returns trimmed output.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                &self.direct_dsn(db),
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "direct SQL failed: {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

/// Returns a TCP port that is free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Options for a gateway under test.
pub struct GatewayOptions {
    pub tls: bool,
    pub upstream_sslmode: &'static str,
    pub extra_server: String,
    pub upstream_port: Option<u16>,
    pub workers: usize,
    /// The agent's role.
    pub role: &'static str,
    /// `[roles.*]` tables for the config.
    pub roles: String,
    /// More TOML appended to the config (extra `[databases.*]`, say).
    pub extra_config: String,
    /// A soft file-size limit (RLIMIT_FSIZE) for the pgward process.
    pub file_size_limit: Option<u64>,
    /// More environment variables for the pgward process (tokens).
    pub env: Vec<(String, String)>,
}

/// A role that may do everything the protocol tests exercise.
pub const FULL_ACCESS_ROLE: &str = r#"[roles.full]
operations = ["select", "insert", "update", "delete", "merge", "copy_out", "copy_in", "ddl", "truncate", "transaction", "set", "show", "listen", "notify", "lock", "maintenance", "prepare", "cursor", "discard"]
read = ["*.*"]
write = ["*.*"]
functions = ["pg_sleep", "pg_terminate_backend", "pg_backend_pid"]
catalog = true
"#;

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            tls: false,
            upstream_sslmode: "disable",
            extra_server: String::new(),
            upstream_port: None,
            workers: 2,
            role: "full",
            roles: FULL_ACCESS_ROLE.to_string(),
            extra_config: String::new(),
            file_size_limit: None,
            env: Vec::new(),
        }
    }
}

/// A running pgward process; killed on drop.
pub struct Gateway {
    pub port: u16,
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    /// The extra environment it was started with (for a restart).
    pub env: Vec<(String, String)>,
}

/// Runs `pgward serve` on `config`, appending to `log`.
fn spawn(mut command: Command, config: &Path, log: &Path, env: &[(String, String)]) -> Child {
    let c = cluster();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    command
        .args(["serve", "--config"])
        .arg(config)
        .env("PGWARD_TEST_SVC_PASSWORD", &c.svc_password)
        .env("PGWARD_LOG", "pgward=debug")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start pgward")
}

/// Makes pgward's own token signing key at `dir/own.key` (`pgward token
/// keygen`).
pub fn token_key(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["token", "keygen", "--out"])
        .arg(dir.join("own.key"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Accepts one HTTP request on `listener` (a webhook's POST), answers
/// 200, and returns the request's text, head and body.
pub fn receive_http(listener: &TcpListener) -> String {
    use std::io::Read;
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = s.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(i) = text.find("\r\n\r\n") {
            let len: usize = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap();
            if buf.len() >= i + 4 + len {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
                return text;
            }
        }
        assert!(n > 0, "the webhook closed early: {text}");
    }
}

/// The password of the test agent.
pub const AGENT_PASSWORD: &str = "agent-secret";

impl Gateway {
    /// Starts a gateway whose agent has `role`, one of the `roles` tables.
    pub fn with_roles(role: &'static str, roles: &str) -> Gateway {
        Gateway::start(GatewayOptions {
            role,
            roles: roles.to_string(),
            ..Default::default()
        })
    }

    /// Starts a gateway in front of the shared cluster.
    pub fn start(opts: GatewayOptions) -> Gateway {
        let c = cluster();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let tls = if opts.tls {
            format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                c.tls_dir.join("pgward.crt").display(),
                c.tls_dir.join("pgward.key").display()
            )
        } else {
            String::new()
        };
        let ca = if opts.upstream_sslmode.starts_with("verify") {
            format!("ca_file = \"{}\"\n", c.tls_dir.join("ca.crt").display())
        } else {
            String::new()
        };
        let upstream_port = opts.upstream_port.unwrap_or(c.port);
        let mut config = format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nworkers = {}\n{tls}{}\n",
            opts.workers, opts.extra_server
        );
        for db in ["shop", "bench"] {
            config += &format!(
                "[databases.{db}]\nhost = \"{}\"\nport = {upstream_port}\nuser = \"{}\"\npassword_env = \"PGWARD_TEST_SVC_PASSWORD\"\nsslmode = \"{}\"\n{ca}connect_timeout_secs = 3\n\n",
                c.host, c.svc_user, opts.upstream_sslmode
            );
        }
        config += &format!(
            "[[users]]\nname = \"agent\"\npassword = \"{AGENT_PASSWORD}\"\nroles = [\"{}\"]\n\n",
            opts.role
        );
        config += &opts.roles;
        config += "\n";
        config += &opts.extra_config;
        let path = dir.path().join("pgward.toml");
        std::fs::write(&path, config).unwrap();
        let log = dir.path().join("pgward.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_pgward"));
        if let Some(limit) = opts.file_size_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let l = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: libc::RLIM_INFINITY,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &l) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = spawn(command, &path, &log, &opts.env);
        let gw = Gateway {
            port,
            child,
            dir,
            log,
            env: opts.env,
        };
        gw.wait_ready();
        gw
    }

    /// Kills the process (SIGKILL) and starts it again on the same
    /// configuration and state; the log goes on in the same file.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let path = self.dir.path().join("pgward.toml");
        self.child = spawn(
            Command::new(env!("CARGO_BIN_EXE_pgward")),
            &path,
            &self.log,
            &self.env,
        );
        self.wait_ready();
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "pgward did not listen on {}: {}",
            self.port,
            self.log_text()
        );
    }

    /// What the gateway logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A libpq DSN through the gateway.
    pub fn dsn(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=agent password={AGENT_PASSWORD} dbname={db} sslmode=disable",
            self.port
        )
    }

    /// A tokio-postgres config through the gateway.
    pub fn pg_config(&self, db: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1")
            .port(self.port)
            .user("agent")
            .password(AGENT_PASSWORD)
            .dbname(db);
        c
    }

    /// Connects tokio-postgres through the gateway and drives the connection.
    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = self
            .pg_config(db)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect through pgward: {e}\n{}", self.log_text()));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// A raw connection logged in as the test agent to `db`.
    pub fn raw(&self, db: &str) -> raw::Raw {
        raw::Raw::login(self.port, "agent", AGENT_PASSWORD, db)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        unsafe_kill(self.child.id(), "TERM");
    }

    /// The configuration file the gateway runs with.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgward.toml")).unwrap()
    }

    /// Writes `config` over the gateway's file and sends SIGHUP; waits
    /// until the log says the reload was taken (true) or refused (false).
    pub fn reload(&self, config: &str) -> bool {
        let outcomes = |log: &str| {
            (
                log.matches("configuration reloaded").count(),
                log.matches("reload refused").count(),
            )
        };
        let before = outcomes(&self.log_text());
        std::fs::write(self.dir.path().join("pgward.toml"), config).unwrap();
        unsafe_kill(self.child.id(), "HUP");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let now = outcomes(&self.log_text());
            if now.0 > before.0 {
                return true;
            }
            if now.1 > before.1 {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no reload outcome logged: {}", self.log_text());
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status();
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python interpreter with psycopg 3 installed: a virtualenv under the
/// target directory, made once (from the Python package registry).
pub fn psycopg_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("psycopg-venv");
            let python = venv.join("bin/python");
            let ready = |p: &Path| {
                Command::new(p)
                    .args(["-c", "import psycopg"])
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !ready(&python) {
                let made = Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .status()
                    .is_ok_and(|s| s.success())
                    && Command::new(&python)
                        .args(["-m", "pip", "install", "-q", "psycopg>=3.1,<4"])
                        .status()
                        .is_ok_and(|s| s.success());
                assert!(
                    made,
                    "cannot make a virtualenv with psycopg at {}",
                    venv.display()
                );
            }
            assert!(
                ready(&python),
                "psycopg does not import in {}",
                venv.display()
            );
            python
        })
        .clone()
}

/// Runs psql with `args` after the DSN, feeding `stdin`.
pub fn psql(dsn: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", dsn])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// stdout of a command as a trimmed string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// stderr of a command as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A path inside the repository.
pub fn repo_path(p: &str) -> PathBuf {
    repo().join(p)
}

/// True when `path` exists.
pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// Held by tests that change grants on the shared sample tables and by the
/// tests comparing catalog listings with the server's, so a listing never
/// sees another test's grant half-way (tests of one binary run in parallel).
pub fn catalog_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// psql's describe commands and an information_schema query give, through
/// `gw` (a role with `catalog = true`), exactly what they give directly.
pub fn assert_catalog_reads_match_direct(gw: &Gateway) {
    let _quiet = catalog_lock();
    for cmd in [
        "\\dt",
        "\\d customers",
        "\\d+ orders",
        "\\dv",
        "\\di",
        "\\dn",
        "\\df",
        "\\du",
        "\\l",
        "\\dx",
        "\\ds",
        "\\d order_summary",
        "\\dT",
        "\\dD",
        "\\dp",
        "\\dc",
        "\\dF",
        "\\do",
        "\\dL",
        "\\dt+",
        "SELECT table_name, column_name, data_type FROM information_schema.columns \
         WHERE table_schema = 'public' ORDER BY 1, 2",
        "SELECT c.relname, a.attname FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         WHERE c.relname = 'customers' AND a.attnum > 0 ORDER BY a.attnum",
    ] {
        let out = psql(&gw.dsn("shop"), &["-c", cmd], "");
        assert!(out.status.success(), "{cmd}: {}", stderr(&out));
        let direct = Command::new("psql")
            .args(["-X", "-At", &cluster().direct_dsn("shop"), "-c", cmd])
            .output()
            .unwrap();
        assert_eq!(
            without_test_objects(&stdout(&out)),
            without_test_objects(&stdout(&direct)),
            "{cmd}: output differs from direct"
        );
    }
}

/// Output lines, without those naming objects that concurrent tests create
/// and drop (their names end in `_` and a process id).
fn without_test_objects(text: &str) -> Vec<&str> {
    let temporary = |line: &str| {
        line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| {
                word.rsplit_once('_').is_some_and(|(head, tail)| {
                    !head.is_empty() && tail.len() >= 3 && tail.bytes().all(|b| b.is_ascii_digit())
                })
            })
    };
    text.lines().filter(|l| !temporary(l)).collect()
}
