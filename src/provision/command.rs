//! `pgward provision`: read the catalog over one session, compute the plan,
//! then print the script, report the drift, or apply the script in one
//! transaction and check that no drift remains.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use super::catalog::{passwords_sql, Catalog, Part};
use super::connection::Connection;
use super::drift::{self, password_matches};
use super::dsn::AdminDsn;
use super::plan::{self, LoginSpec, Plan};
use super::render;
use crate::auth::scram::Verifier;
use crate::config::Config;

/// What the command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Print the script.
    Print,
    /// Report the drift; exit 1 when there is any.
    Drift,
    /// Run the script, then report what it corrected.
    Apply,
}

/// The command's arguments.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file.
    pub config: PathBuf,
    /// The `[databases.NAME]` to provision.
    pub database: String,
    /// An administrator's connection string, for this run only.
    pub admin_dsn: Option<String>,
    /// What to do.
    pub mode: Mode,
}

/// Runs the command: exit 0 when done (and, for `--drift`, when there is no
/// drift), 1 when drift is found or remains, 2 on any error.
pub fn run(opts: Options) -> ExitCode {
    match run_inner(&opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgward: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(opts: &Options) -> Result<ExitCode, String> {
    let config = Config::load(&opts.config).map_err(|e| e.to_string())?;
    let name = opts.database.as_str();
    let db = config.databases.get(name).ok_or_else(|| {
        format!(
            "{}: there is no [databases.{name}]; configured: {}",
            opts.config.display(),
            config
                .databases
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let specs = plan::logins(name, db, &config.policy)
        .map_err(|e| format!("{}: {e}", opts.config.display()))?;
    let target = match &opts.admin_dsn {
        Some(text) => {
            let mut dsn = AdminDsn::parse(text).map_err(|e| e.to_string())?;
            if dsn.password.is_none() {
                dsn.password = std::env::var("PGPASSWORD").ok();
            }
            dsn.database(name, db).map_err(|e| e.to_string())?
        }
        None if opts.mode == Mode::Apply => return Err(
            "--apply needs --admin-dsn: a login allowed to create roles and grant on every object"
                .into(),
        ),
        None => db.clone(),
    };
    let passwords: BTreeMap<String, String> = specs
        .iter()
        .filter_map(|s| s.password.clone().map(|p| (s.user.clone(), p)))
        .collect();
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
    rt.block_on(async {
        let mut conn = Connection::open(&target).await?;
        let catalog = read_catalog(&mut conn, &specs).await?;
        let me = specs.iter().find(|s| s.user == catalog.current_user);
        if let (Some(me), Mode::Apply) = (me, opts.mode) {
            return Err(format!(
                "{}: names {:?}, the login this session runs as; provision its roles with a login of their own",
                me.source, me.user
            ));
        }
        let plan = Plan::new(&catalog, &specs);
        let code = match opts.mode {
            Mode::Print => {
                print!(
                    "{}",
                    render::script(name, &plan, &catalog, &BTreeMap::new()).text
                );
                ExitCode::SUCCESS
            }
            Mode::Drift => {
                let found = drift::compute(&plan, &catalog, &passwords);
                for d in &found {
                    println!("{d}");
                }
                if found.is_empty() {
                    eprintln!("databases.{name}: no drift");
                    ExitCode::SUCCESS
                } else {
                    eprintln!(
                        "databases.{name}: {} difference(s) from the policy",
                        found.len()
                    );
                    ExitCode::from(1)
                }
            }
            Mode::Apply => apply(name, &mut conn, &catalog, &plan, &specs, &passwords).await?,
        };
        conn.close().await;
        Ok(code)
    })
}

/// Reads every catalog part, and the logins' stored passwords when the
/// session may (as a superuser).
pub(crate) async fn read_catalog(
    conn: &mut Connection,
    specs: &[LoginSpec<'_>],
) -> Result<Catalog, String> {
    let mut catalog = Catalog::default();
    for part in Part::ALL {
        let reply = conn
            .query(&part.sql())
            .await
            .map_err(|e| format!("reading the catalog ({}): {e}", part.name()))?;
        catalog.add(part, &reply.rows).map_err(|e| e.to_string())?;
    }
    if catalog.superuser {
        let users: Vec<&str> = specs.iter().map(|s| s.user.as_str()).collect();
        let reply = conn
            .query(&passwords_sql(&users))
            .await
            .map_err(|e| format!("reading the logins' passwords: {e}"))?;
        catalog.add_passwords(&reply.rows);
    }
    Ok(catalog)
}

async fn apply(
    name: &str,
    conn: &mut Connection,
    catalog: &Catalog,
    plan: &Plan,
    specs: &[LoginSpec<'_>],
    passwords: &BTreeMap<String, String>,
) -> Result<ExitCode, String> {
    let before = drift::compute(plan, catalog, passwords);
    if before.is_empty() && catalog.passwords.is_some() {
        println!("databases.{name}: no drift; nothing to apply");
        return Ok(ExitCode::SUCCESS);
    }
    // Passwords are sent as SCRAM verifiers, and only when the stored one
    // does not already verify (or cannot be read).
    let mut verifiers = BTreeMap::new();
    for (user, pw) in passwords {
        let stored = catalog
            .passwords
            .as_ref()
            .and_then(|p| p.get(user))
            .map(String::as_str);
        if catalog.passwords.is_none() || !password_matches(stored, pw) {
            verifiers.insert(user.clone(), Verifier::generate(pw).to_string());
        }
    }
    let script = render::script(name, plan, catalog, &verifiers);
    let reply = conn.query(&script.text).await.map_err(|e| {
        format!("the provisioning script failed and was rolled back: {e}\n(run without --apply to see it)")
    })?;
    for n in &reply.notices {
        eprintln!("pgward: the server said {n}");
    }
    println!(
        "databases.{name}: applied {} statements in one transaction as {}",
        script.statements, catalog.current_user
    );
    for login in &plan.logins {
        println!(
            "  login {} for role(s) {}: {} privilege(s){}",
            login.user,
            login.roles.join(", "),
            login.grants.len(),
            if login.read_only { ", read-only" } else { "" }
        );
        if verifiers.contains_key(&login.user) {
            println!("    password set from {}", login.source);
        }
    }
    let catalog = read_catalog(conn, specs).await?;
    let plan = Plan::new(&catalog, specs);
    let after = drift::compute(&plan, &catalog, passwords);
    let corrected: Vec<&drift::Drift> = before.iter().filter(|d| !after.contains(d)).collect();
    if !corrected.is_empty() {
        println!("corrected:");
        for d in corrected {
            println!("  {d}");
        }
    }
    if after.is_empty() {
        println!("no drift remains");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "drift remains (provisioning never changes who owns what; see docs/provision.md):"
        );
        for d in &after {
            println!("  {d}");
        }
        Ok(ExitCode::from(1))
    }
}
