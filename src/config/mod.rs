//! The TOML configuration: its model, defaults and validation. Errors name the
//! file, the key and what is wrong, so a bad config never starts a gateway.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::auth::scram::Verifier;
use crate::mask::HashKey;
use crate::policy::masks::{MaskSpec, Masks};
use crate::policy::{Policy, RoleConfig};

pub mod admin;
pub mod auth;
pub use admin::{AdminConfig, Reviewer};
pub use auth::AuthConfig;

/// A configuration problem, with where it is.
#[derive(Debug, Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    /// The config file.
    pub file: String,
    /// The offending key, e.g. `databases.shop.sslmode`.
    pub key: String,
    /// What is wrong and, where possible, what to do.
    pub message: String,
}

/// The whole configuration after validation.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listener and worker settings.
    pub server: ServerConfig,
    /// Databases clients may name in their DSN, by that name.
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// Client identities, by user name.
    pub users: BTreeMap<String, UserConfig>,
    /// The statement policy's roles.
    pub policy: Policy,
    /// Masked columns.
    pub masks: Masks,
    /// The key of the hash mask strategy, when configured.
    pub hash_key: Option<HashKey>,
    /// The audit log, when configured.
    pub audit: Option<AuditConfig>,
    /// The admin listener, when configured.
    pub admin: Option<AdminConfig>,
    /// Token logins, when configured.
    pub auth: Option<AuthConfig>,
    /// The first 16 hex digits of the SHA-256 of the file's text: the
    /// policy version audit records name.
    pub version: String,
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Where the segments go.
    pub dir: PathBuf,
    /// Whether a statement waits for its record to be on disk.
    pub durability: crate::audit::writer::Durability,
    /// Segment size at which a new segment starts.
    pub segment_size: u64,
    /// Whether Bind parameters are recorded.
    pub record_params: bool,
    /// Unless strict, the pause between fsyncs.
    pub sync_interval: Duration,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Worker threads, each a monoio runtime.
    pub workers: usize,
    /// TLS certificate chain and key, when TLS is enabled.
    pub tls: Option<TlsFiles>,
    /// The largest message accepted from a client.
    pub max_message_size: usize,
    /// How long a client may take to log in.
    pub login_timeout: Duration,
    /// How long sessions may run on after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Read buffer size per connection direction.
    pub buffer_size: usize,
}

/// Certificate and key files for the client-facing TLS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// How pgward secures its upstream connection, as libpq's sslmode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it, without certificate checks.
    Prefer,
    /// TLS or fail, without certificate checks.
    Require,
    /// TLS with the certificate checked against `ca_file`.
    VerifyCa,
    /// TLS with the certificate and the host name checked.
    VerifyFull,
}

/// `[databases.NAME]`: one upstream database.
#[derive(Clone)]
pub struct DatabaseConfig {
    /// Upstream host name or address.
    pub host: String,
    /// Upstream port.
    pub port: u16,
    /// Upstream database name.
    pub dbname: String,
    /// The user pgward logs in as.
    pub user: String,
    /// That user's password (resolved from password, password_env or password_file).
    pub password: Option<String>,
    /// Upstream TLS mode.
    pub sslmode: SslMode,
    /// CA bundle for verify-ca and verify-full.
    pub ca_file: Option<PathBuf>,
    /// How long to wait for the upstream to accept and log in.
    pub connect_timeout: Duration,
    /// Per-role upstream logins (`[databases.NAME.logins]`), by pgward role.
    pub logins: BTreeMap<String, Login>,
}

/// A database login of its own for one pgward role.
#[derive(Clone)]
pub struct Login {
    /// The database user.
    pub user: String,
    /// Its password.
    pub password: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl DatabaseConfig {
    /// The login a user with `roles` uses: the one their roles name (config
    /// validation makes it unique), else the database's own.
    pub fn login_for(&self, roles: &[String]) -> Login {
        roles
            .iter()
            .find_map(|r| self.logins.get(r).cloned())
            .unwrap_or_else(|| Login {
                user: self.user.clone(),
                password: self.password.clone(),
            })
    }

    /// This database reached as `login`.
    pub fn as_login(&self, login: &Login) -> DatabaseConfig {
        DatabaseConfig {
            user: login.user.clone(),
            password: login.password.clone(),
            ..self.clone()
        }
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

/// `[[users]]`: one client identity.
#[derive(Debug, Clone)]
pub struct UserConfig {
    /// The user name clients log in with.
    pub name: String,
    /// The SCRAM verifier their password must match.
    pub verifier: Verifier,
    /// Policy roles (used by the statement policy).
    pub roles: Vec<String>,
}

// ---- the raw TOML shape ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    #[serde(default)]
    databases: BTreeMap<String, RawDatabase>,
    #[serde(default)]
    users: Vec<RawUser>,
    #[serde(default)]
    roles: BTreeMap<String, RoleConfig>,
    #[serde(default)]
    masks: BTreeMap<String, MaskSpec>,
    #[serde(default)]
    masking: RawMasking,
    audit: Option<RawAudit>,
    admin: Option<admin::RawAdmin>,
    auth: Option<auth::RawAuth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    dir: PathBuf,
    durability: Option<String>,
    segment_size: Option<u64>,
    record_params: Option<bool>,
    sync_interval_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMasking {
    hash_key: Option<String>,
    hash_key_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Vec<String>,
    workers: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_message_size: Option<usize>,
    login_timeout_secs: Option<u64>,
    shutdown_timeout_secs: Option<u64>,
    buffer_size: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    host: String,
    port: Option<u16>,
    dbname: Option<String>,
    user: String,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    sslmode: Option<SslMode>,
    ca_file: Option<PathBuf>,
    connect_timeout_secs: Option<u64>,
    #[serde(default)]
    logins: BTreeMap<String, RawLogin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    user: String,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default)]
    roles: Vec<String>,
}

/// Resolves one of `password`, `password_env`, `password_file` (the key
/// `key` names `password`; the others are its siblings).
fn password_source(
    sources: (Option<String>, Option<String>, Option<PathBuf>),
    key: &str,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<Option<String>, (String, String)> {
    let sibling = |k: &str| format!("{}{k}", key.trim_end_matches("password"));
    match sources {
        (Some(p), None, None) => Ok(Some(p)),
        (None, Some(var), None) => std::env::var(&var).map(Some).map_err(|_| {
            (
                sibling("password_env"),
                format!("environment variable {var} is not set"),
            )
        }),
        (None, None, Some(f)) => {
            let f = resolve(f);
            let text = std::fs::read_to_string(&f).map_err(|e| {
                (
                    sibling("password_file"),
                    format!("cannot read {}: {e}", f.display()),
                )
            })?;
            Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
        }
        (None, None, None) => Ok(None),
        _ => Err((
            key.to_string(),
            "set only one of password, password_env and password_file".into(),
        )),
    }
}

/// Validates `[audit]`; errors name the key.
fn audit_config(
    a: RawAudit,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<AuditConfig, (String, String)> {
    use crate::audit::writer::Durability;
    let durability = match a.durability.as_deref() {
        None | Some("strict") => Durability::Strict,
        Some("written") => Durability::Written,
        Some("async") => Durability::Async,
        Some(other) => {
            return Err((
                "audit.durability".into(),
                format!("{other:?} is not \"strict\", \"written\" or \"async\""),
            ))
        }
    };
    let segment_size = a.segment_size.unwrap_or(64 << 20);
    if !((64 << 10)..=(1 << 40)).contains(&segment_size) {
        return Err((
            "audit.segment_size".into(),
            "must be between 65536 bytes and 1 TiB".into(),
        ));
    }
    let sync_interval = Duration::from_millis(a.sync_interval_ms.unwrap_or(20));
    if sync_interval > Duration::from_secs(10) {
        return Err((
            "audit.sync_interval_ms".into(),
            "must be at most 10000 (records may wait that long for their fsync)".into(),
        ));
    }
    if a.dir.as_os_str().is_empty() {
        return Err(("audit.dir".into(), "must not be empty".into()));
    }
    Ok(AuditConfig {
        dir: resolve(a.dir),
        durability,
        segment_size,
        record_params: a.record_params.unwrap_or(false),
        sync_interval,
    })
}

impl Config {
    /// Where approval requests are kept: `admin.state_dir`, else the audit
    /// log's directory.
    pub fn approval_dir(&self) -> Option<PathBuf> {
        let admin = self.admin.as_ref()?;
        admin
            .state_dir
            .clone()
            .or_else(|| self.audit.as_ref().map(|a| a.dir.clone()))
    }

    /// True when some role needs approvals.
    pub fn uses_approvals(&self) -> bool {
        self.policy.roles.values().any(|r| r.approval.is_some())
    }
}

/// The policy version of a configuration: its text's hash, shortened.
fn config_version(text: &str) -> String {
    crate::audit::chain::sha256_hex(text.as_bytes(), 8)
}

/// Default largest client message: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            key: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, &path.display().to_string(), base)
    }

    /// Parses and validates config text; relative paths resolve against `base`.
    pub fn from_toml(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let line = inner
                    .span()
                    .map(|s| format!(" (line {})", text[..s.start].matches('\n').count() + 1))
                    .unwrap_or_default();
                let key = if path == "." {
                    "(syntax)".to_string()
                } else {
                    path
                };
                err(&key, format!("{}{line}", inner.message()))
            })?;
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let s = raw.server;
        let mut listen = Vec::new();
        for (i, l) in s.listen.iter().enumerate() {
            listen.push(l.parse::<SocketAddr>().map_err(|_| {
                err(
                    &format!("server.listen[{i}]"),
                    format!("{l:?} is not an address:port such as \"127.0.0.1:6432\""),
                )
            })?);
        }
        if listen.is_empty() {
            return Err(err(
                "server.listen",
                "at least one address is required".into(),
            ));
        }
        let workers = match s.workers {
            Some(0) => return Err(err("server.workers", "must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let tls = match (s.tls_cert, s.tls_key) {
            (Some(cert), Some(key)) => {
                let (cert, key) = (resolve(cert), resolve(key));
                for (k, p) in [("server.tls_cert", &cert), ("server.tls_key", &key)] {
                    if !p.is_file() {
                        return Err(err(k, format!("{} does not exist", p.display())));
                    }
                }
                Some(TlsFiles { cert, key })
            }
            (None, None) => None,
            (Some(_), None) => return Err(err("server.tls_key", "tls_cert needs tls_key".into())),
            (None, Some(_)) => return Err(err("server.tls_cert", "tls_key needs tls_cert".into())),
        };
        let max_message_size = s.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE);
        if !(1024..=(1 << 30)).contains(&max_message_size) {
            return Err(err(
                "server.max_message_size",
                "must be between 1024 and 1073741824 bytes".into(),
            ));
        }
        let buffer_size = s.buffer_size.unwrap_or(32 * 1024);
        if !(4096..=(16 << 20)).contains(&buffer_size) {
            return Err(err(
                "server.buffer_size",
                "must be between 4096 and 16777216".into(),
            ));
        }
        let server = ServerConfig {
            listen,
            workers,
            tls,
            max_message_size,
            login_timeout: Duration::from_secs(s.login_timeout_secs.unwrap_or(60).max(1)),
            shutdown_timeout: Duration::from_secs(s.shutdown_timeout_secs.unwrap_or(30)),
            buffer_size,
        };

        let mut databases = BTreeMap::new();
        for (name, d) in raw.databases {
            let key = |k: &str| format!("databases.{name}.{k}");
            let password = password_source(
                (d.password, d.password_env, d.password_file),
                &key("password"),
                &resolve,
            )
            .map_err(|(k, m)| err(&k, m))?;
            let mut logins = BTreeMap::new();
            for (role, l) in d.logins {
                let lkey = |k: &str| key(&format!("logins.{role}.{k}"));
                if l.user.is_empty() {
                    return Err(err(&lkey("user"), "must not be empty".into()));
                }
                let password = password_source(
                    (l.password, l.password_env, l.password_file),
                    &lkey("password"),
                    &resolve,
                )
                .map_err(|(k, m)| err(&k, m))?;
                logins.insert(
                    role,
                    Login {
                        user: l.user,
                        password,
                    },
                );
            }
            let sslmode = d.sslmode.unwrap_or(SslMode::Prefer);
            let ca_file = d.ca_file.map(resolve);
            if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && ca_file.is_none() {
                return Err(err(
                    &key("ca_file"),
                    "verify-ca and verify-full need ca_file".into(),
                ));
            }
            if let Some(f) = &ca_file {
                if !f.is_file() {
                    return Err(err(
                        &key("ca_file"),
                        format!("{} does not exist", f.display()),
                    ));
                }
            }
            if d.host.is_empty() {
                return Err(err(&key("host"), "must not be empty".into()));
            }
            databases.insert(
                name.clone(),
                DatabaseConfig {
                    host: d.host,
                    port: d.port.unwrap_or(5432),
                    dbname: d.dbname.unwrap_or_else(|| name.clone()),
                    user: d.user,
                    password,
                    sslmode,
                    ca_file,
                    connect_timeout: Duration::from_secs(
                        d.connect_timeout_secs.unwrap_or(10).max(1),
                    ),
                    logins,
                },
            );
        }
        if databases.is_empty() {
            return Err(err(
                "databases",
                "at least one [databases.NAME] is required".into(),
            ));
        }

        let policy = Policy::compile(&raw.roles).map_err(|(key, message)| err(&key, message))?;
        let masks = Masks::compile(&raw.masks).map_err(|(key, message)| err(&key, message))?;
        for (name, role) in &policy.roles {
            for (i, (table, col)) in role.unmask.iter().enumerate() {
                if masks.rule(table, col).is_none() {
                    return Err(err(
                        &format!("roles.{name}.unmask[{i}]"),
                        format!("{table}.{col} has no mask in [masks]"),
                    ));
                }
            }
        }
        let hash_key = match (raw.masking.hash_key, raw.masking.hash_key_env) {
            (Some(k), None) => Some(HashKey::new(k.as_bytes())),
            (None, Some(var)) => Some(HashKey::new(
                std::env::var(&var)
                    .map_err(|_| {
                        err(
                            "masking.hash_key_env",
                            format!("environment variable {var} is not set"),
                        )
                    })?
                    .as_bytes(),
            )),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(err(
                    "masking.hash_key",
                    "set hash_key or hash_key_env, not both".into(),
                ))
            }
        };
        if masks.needs_key() && hash_key.is_none() {
            return Err(err(
                "masking.hash_key_env",
                "the hash strategy needs a secret key: set [masking] hash_key_env (or hash_key)"
                    .into(),
            ));
        }
        let mut users = BTreeMap::new();
        for (i, u) in raw.users.into_iter().enumerate() {
            let key = |k: &str| format!("users[{i}].{k}");
            if u.name.is_empty() {
                return Err(err(&key("name"), "must not be empty".into()));
            }
            let password = password_source(
                (u.password, u.password_env, u.password_file),
                &key("password"),
                &resolve,
            )
            .map_err(|(k, m)| err(&k, m))?
            .ok_or_else(|| {
                err(
                    &key("password"),
                    "set one of password, password_env and password_file".into(),
                )
            })?;
            let verifier = if password.starts_with("SCRAM-SHA-256$") {
                Verifier::parse(&password).map_err(|e| err(&key("password"), e.to_string()))?
            } else if password.starts_with("md5") && password.len() == 35 {
                return Err(err(
                    &key("password"),
                    "md5 hashes are not accepted; use a SCRAM-SHA-256 verifier (pgward scram-verifier)"
                        .into(),
                ));
            } else if password.is_empty() {
                return Err(err(&key("password"), "must not be empty".into()));
            } else {
                Verifier::generate(&password)
            };
            for (j, r) in u.roles.iter().enumerate() {
                if !policy.roles.contains_key(r) {
                    return Err(err(
                        &key(&format!("roles[{j}]")),
                        format!("role {r:?} is not defined; add a [roles.{r}] section"),
                    ));
                }
            }
            if users.contains_key(&u.name) {
                return Err(err(
                    &key("name"),
                    format!("user {:?} is defined twice", u.name),
                ));
            }
            users.insert(
                u.name.clone(),
                UserConfig {
                    name: u.name,
                    verifier,
                    roles: u.roles,
                },
            );
        }
        for (db, d) in &databases {
            for role in d.logins.keys() {
                if !policy.roles.contains_key(role) {
                    return Err(err(
                        &format!("databases.{db}.logins.{role}"),
                        format!("role {role:?} is not defined; logins are keyed by pgward role"),
                    ));
                }
            }
            for u in users.values() {
                // A user's roles must agree on one login: which login a
                // session uses is never a guess.
                let mut chosen: Vec<&str> = u
                    .roles
                    .iter()
                    .filter_map(|r| d.logins.get(r).map(|l| l.user.as_str()))
                    .collect();
                let named = chosen.len();
                chosen.sort_unstable();
                chosen.dedup();
                if chosen.len() > 1 || (named > 0 && named < u.roles.len()) {
                    return Err(err(
                        &format!("databases.{db}.logins"),
                        format!(
                            "user {:?} has roles {:?}, which map to different logins ({}): give them one login whose grants are their union",
                            u.name,
                            u.roles,
                            if chosen.len() > 1 { chosen.join(", ") } else { format!("{} and the database's own", chosen.join(", ")) }
                        ),
                    ));
                }
            }
        }
        let audit = match raw.audit {
            None => None,
            Some(a) => Some(audit_config(a, &resolve).map_err(|(k, m)| err(&k, m))?),
        };
        let admin = match raw.admin {
            None => None,
            Some(a) => Some(admin::admin_config(a, &resolve).map_err(|(k, m)| err(&k, m))?),
        };
        if let Some((name, _)) = policy.roles.iter().find(|(_, r)| r.approval.is_some()) {
            let key = format!("roles.{name}.approval");
            match &admin {
                None => return Err(err(&key, "approvals need an [admin] section with reviewers (they decide through the admin API)".into())),
                Some(a) if a.reviewers.is_empty() => {
                    return Err(err(&key, "approvals need at least one [[admin.reviewers]]".into()))
                }
                Some(a) if a.state_dir.is_none() && audit.is_none() => {
                    return Err(err("admin.state_dir", format!("{key} needs a place to keep requests: set admin.state_dir (or [audit] dir)")))
                }
                Some(_) => {}
            }
        }
        let auth = match raw.auth {
            None => None,
            Some(a) => Some(auth::auth_config(a, &resolve).map_err(|(k, m)| err(&k, m))?),
        };
        if let Some(a) = &auth {
            for iss in &a.issuers {
                for roles in iss.role_map.values() {
                    if let Some(r) = roles.iter().find(|r| !policy.roles.contains_key(*r)) {
                        return Err(err(
                            "auth.oidc.roles",
                            format!("role {r:?} is not defined; add a [roles.{r}] section"),
                        ));
                    }
                }
            }
        }
        Ok(Config {
            auth,
            admin,
            server,
            databases,
            users,
            policy,
            masks,
            hash_key,
            audit,
            version: config_version(text),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_passwords_come_from_any_source() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.pw"), "from-a-file\n").unwrap();
        std::env::set_var("PGWARD_TEST_AGENT_PW", "from-the-env");
        let config = |source: &str| {
            format!(
                "[server]\nlisten = [\"127.0.0.1:6432\"]\n[databases.shop]\nhost = \"h\"\nuser = \"u\"\n[[users]]\nname = \"a\"\n{source}\n"
            )
        };
        for source in [
            "password = \"inline\"",
            "password_env = \"PGWARD_TEST_AGENT_PW\"",
            "password_file = \"agent.pw\"",
        ] {
            let c = Config::from_toml(&config(source), "t.toml", dir.path()).unwrap();
            assert!(c.users.contains_key("a"), "{source}");
        }
        let e = Config::from_toml(&config(""), "t.toml", dir.path()).unwrap_err();
        assert_eq!(e.key, "users[0].password");
        let e = Config::from_toml(
            &config("password_env = \"PGWARD_TEST_UNSET_PW\""),
            "t.toml",
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(e.key, "users[0].password_env");
    }

    #[test]
    fn logins_are_per_role_and_unambiguous() {
        let base = |logins: &str, roles: &str| {
            format!(
                "[server]\nlisten = [\"127.0.0.1:6432\"]\n\n[databases.shop]\nhost = \"h\"\nuser = \"svc\"\npassword = \"pw\"\n\n[databases.shop.logins]\n{logins}\n\n[[users]]\nname = \"a\"\npassword = \"p\"\nroles = {roles}\n\n[roles.reader]\n[roles.writer]\n"
            )
        };
        let ok = base(
            "reader = { user = \"shop_reader\", password = \"r\" }\nwriter = { user = \"shop_rw\", password = \"w\" }",
            "[\"reader\"]",
        );
        let c = Config::from_toml(&ok, "t.toml", Path::new(".")).unwrap();
        let db = &c.databases["shop"];
        assert_eq!(db.login_for(&["reader".into()]).user, "shop_reader");
        assert_eq!(db.login_for(&["other".into()]).user, "svc");
        assert_eq!(
            db.as_login(&db.login_for(&["writer".into()])).user,
            "shop_rw"
        );
        let both = base(
            "reader = { user = \"shop_reader\", password = \"r\" }\nwriter = { user = \"shop_rw\", password = \"w\" }",
            "[\"reader\", \"writer\"]",
        );
        let e = Config::from_toml(&both, "t.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.key, "databases.shop.logins");
        assert!(e.message.contains("shop_reader, shop_rw"), "{e}");
        let half = base(
            "reader = { user = \"shop_reader\" }",
            "[\"reader\", \"writer\"]",
        );
        assert!(Config::from_toml(&half, "t.toml", Path::new(".")).is_err());
        let unknown = base("nobody = { user = \"x\" }", "[\"reader\"]");
        let e = Config::from_toml(&unknown, "t.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.key, "databases.shop.logins.nobody");
    }

    const GOOD: &str = r#"
[server]
listen = ["127.0.0.1:6432"]
workers = 2

[databases.shop]
host = "127.0.0.1"
user = "svc"
password = "pw"
sslmode = "disable"

[[users]]
name = "agent"
password = "secret"
roles = ["reader"]

[roles.reader]
operations = ["select"]
read = ["public.*"]
"#;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, "test.toml", Path::new("/nonexistent"))
    }

    #[test]
    fn loads_a_good_config_with_defaults() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.server.workers, 2);
        assert_eq!(c.server.max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
        let db = &c.databases["shop"];
        assert_eq!((db.dbname.as_str(), db.port), ("shop", 5432));
        assert_eq!(c.users["agent"].roles, vec!["reader"]);
    }

    #[test]
    fn errors_name_file_and_key() {
        let cases = [
            (GOOD.replace("127.0.0.1:6432", "nope"), "server.listen[0]"),
            (GOOD.replace("workers = 2", "workers = 0"), "server.workers"),
            (
                GOOD.replace("\"disable\"", "\"sometimes\""),
                "databases.shop.sslmode",
            ),
            (GOOD.replace("workers = 2", "workerz = 2"), "server.workerz"),
            (
                GOOD.replace("password = \"pw\"", "password_env = \"PGWARD_UNSET_VAR\""),
                "databases.shop.password_env",
            ),
            (
                GOOD.replace("\"secret\"", "\"SCRAM-SHA-256$x\""),
                "users[0].password",
            ),
            (
                GOOD.replace("sslmode = \"disable\"", "sslmode = \"verify-full\""),
                "databases.shop.ca_file",
            ),
            (
                GOOD.replace("roles = [\"reader\"]", "roles = [\"writer\"]"),
                "users[0].roles[0]",
            ),
            (
                GOOD.replace("[\"select\"]", "[\"selct\"]"),
                "roles.reader.operations",
            ),
            (GOOD.replace("read = [", "reed = ["), "roles.reader.reed"),
            (
                format!("{GOOD}\n[masks]\n\"public.c.card\" = \"hash\"\n"),
                "masking.hash_key_env",
            ),
            (
                format!("{GOOD}\n[masks]\n\"c.card\" = \"hash\"\n"),
                "masks.\"c.card\"",
            ),
            (
                GOOD.replace(
                    "read = [\"public.*\"]",
                    "read = [\"public.*\"]\nunmask = [\"public.c.x\"]",
                ),
                "roles.reader.unmask[0]",
            ),
        ];
        for (text, key) in cases {
            let e = load(&text).unwrap_err();
            assert_eq!(e.file, "test.toml");
            assert_eq!(e.key, key, "{e}");
        }
    }
}
