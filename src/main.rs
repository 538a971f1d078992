//! The pgward command line: `serve` runs the gateway, `check` validates a
//! config, `scram-verifier` turns a password into a stored verifier,
//! `explain` shows a decision, `provision` gives the database logins exactly
//! the grants their roles imply, `audit` verifies and reads the audit log.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pgward::auth::scram::Verifier;
use pgward::config::Config;
use pgward::proxy::{shutdown, worker};
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    name = "pgward",
    version,
    about = "A least-privilege gateway for AI agents on PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The TOML config file.
        #[arg(long, env = "PGWARD_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file and exit.
    Check {
        /// The TOML config file.
        #[arg(long, env = "PGWARD_CONFIG")]
        config: PathBuf,
        /// Also log in to every upstream with every login and check it.
        #[arg(long)]
        connect: bool,
    },
    /// Print a SCRAM-SHA-256 verifier for a password read from standard input.
    ScramVerifier,
    /// Show how a statement is classified and what the policy decides for a role.
    Explain {
        /// The TOML config file (its [roles.*] are used).
        #[arg(long, env = "PGWARD_CONFIG")]
        config: PathBuf,
        /// The role (or comma-separated roles) to decide for.
        #[arg(long)]
        role: String,
        /// The database name the session would use.
        #[arg(long, default_value = "")]
        database: String,
        /// The session's search_path (comma-separated).
        #[arg(long, default_value = "public")]
        search_path: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The SQL text.
        sql: String,
    },
    /// Print, apply or check the grants each login of a database needs
    /// (docs/provision.md).
    Provision {
        /// The TOML config file.
        #[arg(long, env = "PGWARD_CONFIG")]
        config: PathBuf,
        /// The [databases.NAME] whose logins to provision.
        #[arg(long)]
        database: String,
        /// An administrator's connection string (key=value or postgres://
        /// URL), used for this run only and never stored. Without it the
        /// database's own login reads the catalog.
        #[arg(long, env = "PGWARD_ADMIN_DSN", hide_env_values = true)]
        admin_dsn: Option<String>,
        /// Run the script in one transaction through --admin-dsn.
        #[arg(long, requires = "admin_dsn", conflicts_with = "drift")]
        apply: bool,
        /// Report where the database's grants differ from the policy; exit
        /// status 1 when they do.
        #[arg(long)]
        drift: bool,
    },
    /// Verify and read the audit log (docs/audit.md).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// List, show, approve and deny approval requests (docs/approvals.md).
    Approvals {
        #[command(flatten)]
        target: AdminTarget,
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// pgward's own tokens: make a signing key, issue a token
    /// (docs/identity.md).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List live sessions, or terminate one (docs/admin.md).
    Sessions {
        #[command(flatten)]
        target: AdminTarget,
        #[command(subcommand)]
        command: Option<SessionsCommand>,
    },
}

/// Where the admin API is and the token to call it with.
#[derive(clap::Args)]
struct AdminTarget {
    /// The admin API's address.
    #[arg(
        long,
        env = "PGWARD_ADMIN_URL",
        default_value = "http://127.0.0.1:6433",
        global = true
    )]
    admin: String,
    /// The bearer token (a reviewer's, to decide or terminate).
    #[arg(
        long,
        env = "PGWARD_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// List pending requests (and approved ones not used yet).
    List {
        /// Also the decided and ended ones still kept.
        #[arg(long)]
        all: bool,
    },
    /// Show one request: its SQL, parameters, reasons and state.
    Show { id: String },
    /// Approve a request: the statement runs (held), or may run once (retry).
    Approve {
        id: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a request; the client is told the reason.
    Deny {
        id: String,
        /// Why (required; the client is told).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make an Ed25519 signing key (PEM, readable by its owner only) for
    /// `[auth.tokens] key_file`; prints its key id.
    Keygen {
        /// Where to write it (never over an existing file).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a token signed with `[auth.tokens] key_file`, for use as the
    /// password (`PGPASSWORD=$(pgward token issue ...) psql -U SUBJECT`).
    Issue {
        /// The TOML config file.
        #[arg(long, env = "PGWARD_CONFIG")]
        config: PathBuf,
        /// Who the token is for: the user name to log in with.
        #[arg(long)]
        subject: String,
        /// pgward roles, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// How long it lives, such as 15m (at most `max_ttl`).
        #[arg(long, default_value = "15m")]
        ttl: String,
    },
}

/// Runs `pgward token ...`.
fn token(command: TokenCommand) -> ExitCode {
    match command {
        TokenCommand::Keygen { out } => match pgward::auth::keygen::keygen(&out) {
            Ok(kid) => {
                println!("{}: Ed25519 key {kid}", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pgward: {e}");
                ExitCode::from(2)
            }
        },
        TokenCommand::Issue {
            config,
            subject,
            roles,
            ttl,
        } => {
            let c = match load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("pgward: {e}");
                    return ExitCode::from(2);
                }
            };
            let auth = c.auth.as_ref();
            let (Some(key), Some(own)) = (
                auth.and_then(|a| a.signing.as_ref()),
                auth.and_then(|a| a.issuers.first()),
            ) else {
                eprintln!(
                    "pgward: {}: no [auth.tokens] key_file to sign with",
                    config.display()
                );
                return ExitCode::from(2);
            };
            let Some(ttl) = pgward::policy::approval::parse_span(&ttl).filter(|d| !d.is_zero())
            else {
                eprintln!("pgward: --ttl {ttl:?} is not a duration such as 15m");
                return ExitCode::from(2);
            };
            if ttl > own.max_ttl {
                eprintln!(
                    "pgward: --ttl is longer than auth.tokens.max_ttl ({} s)",
                    own.max_ttl.as_secs()
                );
                return ExitCode::from(2);
            }
            if let Some(r) = roles.iter().find(|r| !c.policy.roles.contains_key(*r)) {
                eprintln!("pgward: role {r:?} is not defined in {}", config.display());
                return ExitCode::from(2);
            }
            let now = pgward::audit::time::now_secs();
            println!(
                "{}",
                pgward::auth::keygen::issue(
                    key,
                    &own.issuer,
                    &own.audience,
                    &subject,
                    &roles,
                    now,
                    ttl.as_secs()
                )
            );
            ExitCode::SUCCESS
        }
    }
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// List live sessions (the default).
    List,
    /// End a session: its client gets FATAL 57P01.
    Terminate { id: String },
}

/// Runs `pgward approvals ...` or `pgward sessions ...`.
fn admin_call(t: AdminTarget, call: pgward::admin::cli::Call) -> ExitCode {
    let target = pgward::admin::cli::Target {
        url: t.admin,
        token: t.token,
        json: t.json,
    };
    pgward::admin::cli::run(&target, call)
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every stream's hash chain from its first record to its last;
    /// exit status 0 when intact, 1 when broken, 2 when unreadable. Prints
    /// each stream's head hash: keep it elsewhere, because records cut off
    /// the end of a stream can only be detected against a head recorded
    /// earlier.
    Verify {
        /// The audit directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print statements and session events as a table (or JSON lines),
    /// all streams merged in time order.
    Show {
        /// The audit directory.
        #[arg(long)]
        dir: PathBuf,
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
        /// Only this user.
        #[arg(long)]
        user: Option<String>,
        /// Only statements with this verdict (masked: allowed, with columns
        /// masked in the result).
        #[arg(long, value_parser = ["allowed", "denied", "masked"])]
        verdict: Option<String>,
        /// Only records at or after this time (RFC 3339, or YYYY-MM-DD).
        #[arg(long, value_parser = parse_since)]
        since: Option<u64>,
        /// Print the matching records' JSON lines unchanged.
        #[arg(long)]
        json: bool,
        /// Keep printing records as they are appended, until interrupted.
        #[arg(long)]
        follow: bool,
    },
    /// Print one session's timeline, connect to disconnect; exit status 1
    /// when the session is not in the log.
    Replay {
        /// The audit directory.
        #[arg(long)]
        dir: PathBuf,
        /// The session id (as `audit show` prints it).
        #[arg(long)]
        session: String,
    },
}

/// Reads `--since`.
fn parse_since(text: &str) -> Result<u64, String> {
    pgward::audit::time::parse(text).ok_or_else(|| {
        format!(
            "{text:?} is not a time: use RFC 3339 (2026-12-01T17:06:36Z) or a date (2026-12-01)"
        )
    })
}

/// Runs a `pgward audit` command.
fn audit(command: AuditCommand) -> ExitCode {
    use pgward::audit::{replay, show, verify};
    match command {
        AuditCommand::Verify { dir } => verify::run(&dir),
        AuditCommand::Show {
            dir,
            session,
            user,
            verdict,
            since,
            json,
            follow,
        } => show::run(&show::Options {
            dir,
            filter: show::Filter {
                session,
                user,
                verdict: verdict.and_then(|v| v.parse().ok()),
                since,
            },
            json,
            follow,
        }),
        AuditCommand::Replay { dir, session } => replay::run(&dir, &session),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGWARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(|| LogWriter(std::io::stderr()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .log_internal_errors(false)
        .init();
    // A panic anywhere is a bug: end the process rather than leave a worker
    // thread gone with its sessions hanging and its listener unserved.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        // A command whose output is cut short (`pgward explain ... | head`)
        // ends quietly, as Unix tools do, instead of panicking on EPIPE.
        // SAFETY: restoring a signal's default disposition at start-up,
        // before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::Audit { command } => audit(command),
        Command::Token { command } => token(command),
        Command::Approvals { target, command } => {
            use pgward::admin::cli::Call;
            admin_call(
                target,
                match command {
                    ApprovalsCommand::List { all } => Call::ListApprovals { all },
                    ApprovalsCommand::Show { id } => Call::ShowApproval { id },
                    ApprovalsCommand::Approve { id, reason } => Call::Decide {
                        id,
                        approve: true,
                        reason,
                    },
                    ApprovalsCommand::Deny { id, reason } => Call::Decide {
                        id,
                        approve: false,
                        reason: Some(reason),
                    },
                },
            )
        }
        Command::Sessions { target, command } => {
            use pgward::admin::cli::Call;
            admin_call(
                target,
                match command {
                    None | Some(SessionsCommand::List) => Call::ListSessions,
                    Some(SessionsCommand::Terminate { id }) => Call::Terminate { id },
                },
            )
        }
        Command::Check { config, connect } => match load(&config) {
            Ok(c) if connect => {
                let findings = pgward::connect_check::run(&c);
                let mut errors = 0;
                for f in &findings {
                    match f {
                        pgward::connect_check::Finding::Error(e)
                        | pgward::connect_check::Finding::Misconfigured(e) => {
                            errors += 1;
                            println!("error: {e}");
                        }
                        pgward::connect_check::Finding::Warning(w) => println!("warning: {w}"),
                    }
                }
                println!(
                    "{}: {} ({} error(s), {} warning(s))",
                    config.display(),
                    if errors == 0 { "ok" } else { "not ok" },
                    errors,
                    findings.len() - errors
                );
                if errors == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(2)
                }
            }
            Ok(c) => {
                println!(
                    "{}: ok ({} database(s), {} user(s), {} worker(s))",
                    config.display(),
                    c.databases.len(),
                    c.users.len(),
                    c.server.workers
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pgward: {e}");
                ExitCode::from(2)
            }
        },
        Command::Explain {
            config,
            role,
            database,
            search_path,
            json,
            sql,
        } => {
            // Only the roles are needed: no secrets, certificates or upstreams.
            let policy = std::fs::read_to_string(&config)
                .map_err(|e| format!("{}: cannot read: {e}", config.display()))
                .and_then(|t| {
                    pgward::policy::Policy::from_toml(&t)
                        .map_err(|e| format!("{}: {e}", config.display()))
                });
            // The masks too, as serve applies them (no secrets needed).
            let masks = std::fs::read_to_string(&config)
                .ok()
                .and_then(|t| pgward::policy::masks::Masks::from_toml(&t).ok());
            match policy {
                Ok(p) => pgward::explain::run(
                    &p,
                    masks.as_ref(),
                    &role,
                    &database,
                    &search_path,
                    json,
                    &sql,
                ),
                Err(e) => {
                    eprintln!("pgward: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Provision {
            config,
            database,
            admin_dsn,
            apply,
            drift,
        } => pgward::provision::run(pgward::provision::Options {
            config,
            database,
            admin_dsn,
            mode: match (apply, drift) {
                (true, _) => pgward::provision::Mode::Apply,
                (_, true) => pgward::provision::Mode::Drift,
                _ => pgward::provision::Mode::Print,
            },
        }),
        Command::ScramVerifier => {
            let mut password = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut password) {
                eprintln!("pgward: cannot read the password: {e}");
                return ExitCode::from(2);
            }
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                eprintln!("pgward: the password on standard input is empty");
                return ExitCode::from(2);
            }
            println!("{}", Verifier::generate(password));
            ExitCode::SUCCESS
        }
    }
}

/// Reloads the configuration on SIGHUP: a config that loads, validates and
/// passes the start-up checks is put in force (new sessions at once, existing
/// ones at their next statement); anything else is logged and the old one
/// kept. Settings only a restart can change are kept and named. Returns
/// false, so the signal loop goes on.
fn reload(path: &std::path::Path, current: &mut worker::Blueprint) -> bool {
    info!(config = %path.display(), "SIGHUP: reloading the configuration");
    let checked = Config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            for finding in pgward::connect_check::run(&config) {
                match finding {
                    pgward::connect_check::Finding::Misconfigured(e) => return Err(e),
                    pgward::connect_check::Finding::Error(e) => warn!("{e}"),
                    pgward::connect_check::Finding::Warning(w) => warn!("{w}"),
                }
            }
            worker::Blueprint::reloaded(config, current)
        });
    let mut next = match checked {
        Ok(b) => b,
        Err(e) => {
            error!(config = %path.display(), error = %e, "reload refused; the configuration in force is kept");
            return false;
        }
    };
    let restart_only = next.keep_restart_only(current);
    if !restart_only.is_empty() {
        warn!(
            settings = ?restart_only,
            "these settings change only when pgward restarts; the running values are kept"
        );
    }
    let generation = pgward::proxy::reload::publish(next.clone());
    *current = next;
    info!(generation, "configuration reloaded");
    false
}

/// Loads the config and everything it points at (certificates, keys).
fn load(path: &std::path::Path) -> Result<Config, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    worker::Blueprint::new(config.clone()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(config)
}

/// Standard error for the log, whose failures (a full disk, a closed pipe)
/// are dropped: losing a log line must not stop a worker.
struct LogWriter(std::io::Stderr);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(self.0.write(buf).unwrap_or(buf.len()))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

fn serve(path: PathBuf) -> ExitCode {
    // An audit segment past a file size limit must fail its write (and so
    // refuse statements) rather than kill the process.
    // SAFETY: setting a signal's disposition at start-up, before any thread.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pgward: {e}");
            return ExitCode::from(2);
        }
    };
    // The database as configured: a mask naming no column would mask
    // nothing, so pgward does not start; anything else is logged (an
    // upstream that is down now may be up when agents arrive).
    for finding in pgward::connect_check::run(&config) {
        match finding {
            pgward::connect_check::Finding::Misconfigured(e) => {
                eprintln!("pgward: {}: {e}", path.display());
                return ExitCode::from(2);
            }
            pgward::connect_check::Finding::Error(e) => warn!("{e}"),
            pgward::connect_check::Finding::Warning(w) => warn!("{w}"),
        }
    }
    // Issuers' keys that come from a URL are fetched now, in the background.
    pgward::proxy::jwks::prefetch(&config);
    let listen = config.server.listen.clone();
    let workers = config.server.workers;
    let blueprint = match worker::Blueprint::new(config) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("pgward: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pgward: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut blueprint = blueprint;
    if let Err(e) = blueprint.open_approvals() {
        eprintln!("pgward: {e}");
        return ExitCode::FAILURE;
    }
    let mut current = blueprint.clone();
    let admin_config = blueprint.config().clone();
    let started = match worker::start(blueprint) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pgward: {e}");
            return ExitCode::FAILURE;
        }
    };
    let admin =
        pgward::admin::thread::admin_start(&admin_config, current.approvals(), started.admin_audit);
    if let Some(a) = admin {
        if let Err(e) = pgward::admin::thread::start(a) {
            eprintln!("pgward: {e}");
            return ExitCode::FAILURE;
        }
    }
    if !shutdown::wait_for_workers(workers, Duration::from_secs(10)) {
        eprintln!("pgward: a worker could not start (see the log above)");
        return ExitCode::FAILURE;
    }
    info!(?listen, workers, "pgward listening");
    let signal = signals
        .forever()
        .find(|&s| s != signal_hook::consts::SIGHUP || reload(&path, &mut current));
    let grace = current.config().server.shutdown_timeout;
    info!(
        ?signal,
        grace_secs = grace.as_secs(),
        "shutting down: no new sessions"
    );
    shutdown::begin_drain(grace);
    while shutdown::active_sessions() > 0 && !shutdown::drain_expired() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = shutdown::active_sessions();
    if left > 0 {
        warn!(
            sessions = left,
            "grace period over; closing remaining sessions"
        );
        // Let the workers send their shutdown notice.
        std::thread::sleep(Duration::from_millis(600));
    }
    if shutdown::failed() {
        error!("a worker failed");
        return ExitCode::FAILURE;
    }
    info!("pgward stopped");
    ExitCode::SUCCESS
}
