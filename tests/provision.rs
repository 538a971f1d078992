//! `pgward provision` against the real server, each test on a scratch copy
//! of examples/shop.sql with logins of its own: the grants it gives are the
//! ones examples/policy.toml implies (checked object by object with
//! PostgreSQL's has_*_privilege functions, against expectations written out
//! here), a second run changes nothing, manual changes show up as drift, and
//! a hole planted in the policy meets the server's `permission denied`.

mod common;

use std::process::Command;

use common::raw::Msg;
use common::scratch::Scratch;
use common::*;

const POLICY: &str = include_str!("../examples/policy.toml");

/// What examples/policy.toml implies, written out: may `role` have
/// `privilege` on the relation `name` (kind as in pg_class) of `schema`?
fn expected_relation(role: &str, schema: &str, name: &str, kind: &str, privilege: &str) -> bool {
    if schema != "public" {
        return false;
    }
    let sequence = kind == "S";
    let table = kind == "r";
    // pg_stat_statements's views (when the extension is there) call its
    // functions, which no role names: nobody reads them.
    let calls_ungranted = matches!(name, "pg_stat_statements" | "pg_stat_statements_info");
    match (role, privilege) {
        // Every public relation but the API keys and the view over them;
        // employees only column by column (salary is denied).
        ("reader", "SELECT") => {
            !calls_ungranted && !matches!(name, "api_keys" | "key_inventory" | "employees")
        }
        ("writer", "SELECT") | ("migrator", "SELECT") => !calls_ungranted,
        ("writer", "INSERT" | "UPDATE" | "DELETE") => {
            !sequence && matches!(name, "orders" | "order_items")
        }
        // nextval() on the identity sequence of a table it inserts into.
        ("writer", "USAGE") => name == "orders_id_seq",
        // New tables' foreign keys may reference the existing ones.
        ("migrator", "REFERENCES") => table,
        _ => false,
    }
}

fn expected_column(role: &str, schema: &str, table: &str, column: &str) -> bool {
    match role {
        "reader" => {
            expected_relation(role, schema, table, "r", "SELECT")
                || (schema == "public" && table == "employees" && column != "salary")
        }
        _ => expected_relation(role, schema, table, "v", "SELECT"),
    }
}

fn expected_function(role: &str, schema: &str, name: &str) -> bool {
    role == "reader" && schema == "public" && name == "customer_order_count"
}

fn expected_schema(role: &str, schema: &str, privilege: &str) -> bool {
    schema == "public" && (privilege == "USAGE" || role == "migrator")
}

/// Rows of `login|...|t/f` for a has_*_privilege check over `from`.
fn mismatches(
    s: &Scratch,
    what: &str,
    query: &str,
    expected: impl Fn(&str, &[&str]) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut checked = 0;
    for (role, login) in s.logins() {
        let rows = s.sql(&query.replace("$LOGIN", login));
        for line in rows.lines() {
            let cols: Vec<&str> = line.split('|').collect();
            let (got, key) = cols.split_last().unwrap();
            let want = expected(role, key);
            checked += 1;
            if (*got == "t") != want {
                out.push(format!(
                    "{role} {what} {key:?}: server says {got}, policy says {want}"
                ));
            }
        }
    }
    assert!(checked > 50, "{what}: only {checked} checks ran");
    out
}

#[test]
fn provisioning_gives_every_login_exactly_its_grants() {
    let s = Scratch::new("grants");
    let out = s.apply();
    assert!(
        stdout(&out).contains("no drift remains"),
        "{}",
        stdout(&out)
    );
    let mut wrong = Vec::new();
    wrong.extend(mismatches(
        &s,
        "relation",
        "SELECT n.nspname, c.relname, c.relkind, p.priv, \
           CASE WHEN c.relkind = 'S' THEN \
             CASE WHEN p.priv IN ('USAGE', 'SELECT', 'UPDATE') \
               THEN has_sequence_privilege('$LOGIN', c.oid, p.priv) ELSE false END \
           ELSE CASE WHEN p.priv = 'USAGE' THEN false \
             ELSE has_table_privilege('$LOGIN', c.oid, p.priv) END END \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, \
           unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER','USAGE']) p(priv) \
         WHERE n.nspname IN ('public', 'internal') AND c.relkind IN ('r','p','v','m','f','S') \
         ORDER BY 1, 2, 4",
        |role, k| expected_relation(role, k[0], k[1], k[2], k[3]),
    ));
    wrong.extend(mismatches(
        &s,
        "column",
        "SELECT n.nspname, c.relname, a.attname, \
           has_column_privilege('$LOGIN', c.oid, a.attnum, 'SELECT') \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname IN ('public', 'internal') AND c.relkind IN ('r','p','v','m','f') \
           AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2, 3",
        |role, k| expected_column(role, k[0], k[1], k[2]),
    ));
    wrong.extend(mismatches(
        &s,
        "function",
        "SELECT n.nspname, p.oid::regprocedure::text, p.proname, \
           has_function_privilege('$LOGIN', p.oid, 'EXECUTE') \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname IN ('public', 'internal') ORDER BY 2",
        |role, k| expected_function(role, k[0], k[2]),
    ));
    for (role, login) in s.logins() {
        for schema in ["public", "internal"] {
            for privilege in ["USAGE", "CREATE"] {
                let got = s.sql(&format!(
                    "SELECT has_schema_privilege('{login}', '{schema}', '{privilege}')"
                ));
                if (got == "t") != expected_schema(role, schema, privilege) {
                    wrong.push(format!(
                        "{role} {privilege} on schema {schema}: server says {got}"
                    ));
                }
            }
        }
        let attrs = s.sql(&format!(
            "SELECT rolcanlogin, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls \
             FROM pg_roles WHERE rolname = '{login}'"
        ));
        assert_eq!(attrs, "t|f|f|f|f|f|f", "{role}");
    }
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(
        s.sql(&format!(
            "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting \
             WHERE setrole = '{}'::regrole AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
            s.reader
        )),
        "default_transaction_read_only=on"
    );
    // PUBLIC no longer creates in public nor executes its functions.
    assert_eq!(
        s.sql(
            "SELECT has_schema_privilege('public', 'public', 'CREATE'), \
                      has_function_privilege('public', 'public.get_api_key(text)', 'EXECUTE')"
        ),
        "f|f"
    );

    // A second run finds nothing to do, and the printed script is stable.
    let again = s.apply();
    assert!(
        stdout(&again).contains("no drift; nothing to apply"),
        "{}",
        stdout(&again)
    );
    let drift = s.provision(&["--drift"]);
    assert_eq!(drift.status.code(), Some(0), "{}", stdout(&drift));
    assert_eq!(stdout(&drift), "");
    let first = s.provision(&[]);
    let second = s.provision(&[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(stdout(&first), stdout(&second));
    assert!(
        !stdout(&first).contains("reader-pw"),
        "passwords are never printed"
    );
    // The printed script, run by psql, is itself a no-op now.
    let run = psql(&cluster().direct_dsn(&s.db), &["-q"], &stdout(&first));
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(s.provision(&["--drift"]).status.code(), Some(0));
}

#[test]
fn manual_changes_show_up_as_drift_and_apply_undoes_them() {
    let s = Scratch::new("drift");
    s.apply();
    s.sql(&format!("GRANT SELECT ON public.api_keys TO {}", s.reader));
    let out = s.provision(&["--drift"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        format!("{}: extra SELECT on table public.api_keys", s.reader)
    );
    s.sql(&format!(
        "GRANT SELECT (key_value) ON public.api_keys TO {w}; \
         GRANT pg_read_all_data TO {r}; \
         ALTER ROLE {w} BYPASSRLS; \
         GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_file(text) TO {r}; \
         GRANT CREATE ON SCHEMA public TO PUBLIC; \
         GRANT EXECUTE ON FUNCTION public.run_sql(text) TO PUBLIC; \
         REVOKE SELECT ON public.orders FROM {r}; \
         ALTER ROLE {r} IN DATABASE {db} RESET default_transaction_read_only; \
         ALTER TABLE internal.audit_log OWNER TO {m}",
        r = s.reader,
        w = s.writer,
        m = s.migrator,
        db = s.db
    ));
    let out = s.provision(&["--drift"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for line in [
        format!("{}: extra SELECT on table public.api_keys", s.reader),
        format!("{}: extra SELECT on column public.api_keys.key_value", s.writer),
        format!("{}: extra membership in role pg_read_all_data", s.reader),
        format!("{}: extra attribute BYPASSRLS", s.writer),
        format!("{}: extra EXECUTE on function pg_catalog.pg_read_file(text)", s.reader),
        "PUBLIC: extra CREATE on schema public".to_string(),
        "PUBLIC: extra EXECUTE on function public.run_sql(q text)".to_string(),
        format!("{}: missing SELECT on table public.orders", s.reader),
        format!(
            "{}: setting default_transaction_read_only is unset in this database, the policy wants on",
            s.reader
        ),
        format!("{}: extra ownership of table internal.audit_log", s.migrator),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // Apply undoes all of it but the ownership, which it reports.
    let out = s.provision(&["--apply", "--admin-dsn", &cluster().direct_dsn(&s.db)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = stdout(&out);
    assert!(report.contains("corrected:"), "{report}");
    let remains = report.split("drift remains").nth(1).unwrap_or_default();
    assert!(
        remains.contains("extra ownership of table internal.audit_log")
            && !remains.contains("api_keys"),
        "{report}"
    );
    s.sql(&format!(
        "ALTER TABLE internal.audit_log OWNER TO {}",
        cluster().svc_user
    ));
    assert_eq!(s.provision(&["--drift"]).status.code(), Some(0));
    // A login reads the catalog for --drift, but never provisions itself.
    let c = cluster();
    let as_reader = format!(
        "host={} port={} user={} password=reader-pw sslmode=disable",
        c.host, c.port, s.reader
    );
    let out = s.provision(&["--drift", "--admin-dsn", &as_reader]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = s.provision(&["--apply", "--admin-dsn", &as_reader]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the login this session runs as"),
        "{}",
        stderr(&out)
    );
}

fn error(reply: &[Msg]) -> Option<(String, String)> {
    reply.iter().find(|m| m.tag == b'E').map(|m| {
        (
            m.field(b'C').unwrap_or_default(),
            m.field(b'M').unwrap_or_default(),
        )
    })
}

#[test]
fn a_hole_in_the_policy_meets_the_servers_permission_denied() {
    let s = Scratch::new("hole");
    s.apply();
    // The grants came from the correct policy; pgward now runs with holes
    // planted in the reader's: api_keys readable, a SECURITY DEFINER function
    // reading it callable, the salary column no longer denied, inserts.
    let planted = POLICY
        .replace(
            "read  = [\"public.*\", \"!public.api_keys\"]",
            "read  = [\"public.*\"]",
        )
        .replace(
            "functions = [\"public.customer_order_count\"]",
            "functions = [\"public.customer_order_count\", \"public.get_api_key\"]",
        )
        .replace("deny_columns = [\"public.employees.salary\"]", "")
        .replace(
            "operations = [\"select\"]                       # read-only",
            "operations = [\"select\", \"insert\", \"transaction\"]\nwrite = [\"public.orders\"]",
        )
        .replacen("write = []\n", "", 1);
    assert_ne!(planted, POLICY);
    let c = cluster();
    let gw = Gateway::start(GatewayOptions {
        role: "reader",
        roles: planted,
        extra_config: format!(
            "{}[databases.scratch.logins]\n{}",
            c.database_section("scratch", &s.db),
            s.logins_toml()
        ),
        ..Default::default()
    });
    let mut r = gw.raw("scratch");
    // What the policy rightly allows works through the provisioned login.
    let reply = r.query("SELECT count(*), public.customer_order_count(1) FROM public.orders");
    assert!(error(&reply).is_none(), "{reply:?}\n{}", gw.log_text());
    assert_eq!(
        s.sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = '{}'",
            s.reader
        )),
        "1",
        "the session runs as the provisioned login"
    );
    for (sql, code, message) in [
        (
            "SELECT public.get_api_key('stripe')",
            "42501",
            "permission denied for function get_api_key",
        ),
        (
            "SELECT key_value FROM public.api_keys",
            "42501",
            "permission denied for table api_keys",
        ),
        (
            "SELECT * FROM public.key_inventory",
            "42501",
            "permission denied for view key_inventory",
        ),
        (
            "SELECT salary FROM public.employees",
            "42501",
            "permission denied for table employees",
        ),
        // The login's own setting keeps its transactions read-only ...
        (
            "INSERT INTO public.orders (customer_id, status, total_cents, created_at) VALUES (1, 'x', 1, now())",
            "25006",
            "cannot execute INSERT in a read-only transaction",
        ),
        // ... and in a read-write one the grant is missing.
        (
            "BEGIN READ WRITE; INSERT INTO public.orders (customer_id, status, total_cents, created_at) VALUES (1, 'x', 1, now())",
            "42501",
            "permission denied for table orders",
        ),
    ] {
        let (got_code, got_message) =
            error(&r.query(sql)).unwrap_or_else(|| panic!("the server allowed: {sql}"));
        assert!(
            !got_message.starts_with("pgward"),
            "{sql}: refused by pgward, not the server: {got_message}"
        );
        assert_eq!((got_code.as_str(), got_message.as_str()), (code, message), "{sql}");
        r.query("ROLLBACK");
    }
}

#[test]
fn a_migrator_creates_and_owns_and_a_second_run_follows_the_schema() {
    let s = Scratch::new("ddl");
    s.apply();
    let c = cluster();
    let as_migrator = format!(
        "host={} port={} user={} password=migrator-pw dbname={} sslmode=disable",
        c.host, c.port, s.migrator, s.db
    );
    let run = |sql: &str| psql(&as_migrator, &["-c", sql], "");
    // It may create in public (and owns what it creates) ...
    let out = run("CREATE TABLE public.coupons (id int PRIMARY KEY, order_id int REFERENCES public.orders(id))");
    assert!(out.status.success(), "{}", stderr(&out));
    // ... but not change tables it does not own: that is the owner's call.
    let out = run("ALTER TABLE public.orders ADD COLUMN note text");
    assert!(
        stderr(&out).contains("must be owner of table orders"),
        "{}",
        stderr(&out)
    );
    // Handing it a table it may write is not drift; the new table is, until
    // provisioning runs again and grants the others what they read.
    s.sql(&format!(
        "ALTER TABLE public.orders OWNER TO {}",
        s.migrator
    ));
    let out = run("ALTER TABLE public.orders ADD COLUMN note text");
    assert!(out.status.success(), "{}", stderr(&out));
    let drift = s.provision(&["--drift"]);
    assert_eq!(drift.status.code(), Some(1));
    let text = stdout(&drift);
    assert!(
        text.contains(&format!(
            "{}: missing SELECT on table public.coupons",
            s.reader
        )),
        "{text}"
    );
    assert!(!text.contains("ownership"), "{text}");
    s.apply();
    assert_eq!(s.provision(&["--drift"]).status.code(), Some(0));
    assert_eq!(
        s.sql(&format!(
            "SELECT has_table_privilege('{}', 'public.coupons', 'SELECT'), \
                    has_table_privilege('{}', 'public.orders', 'INSERT')",
            s.reader, s.writer
        )),
        "t|t"
    );
}

#[test]
fn usage_errors_exit_2_and_never_echo_the_password() {
    let s = Scratch::new("usage");
    for (args, needle) in [
        (vec!["--apply"], "--admin-dsn"),
        (
            vec!["--apply", "--drift", "--admin-dsn", "user=x"],
            "cannot be used with",
        ),
        (
            vec!["--admin-dsn", "user=x dbname=elsewhere", "--drift"],
            "elsewhere",
        ),
        (
            vec!["--admin-dsn", "user=x password='secret"],
            "closing quote",
        ),
    ] {
        let out = s.provision(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("secret"));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["provision", "--config"])
        .arg(&s.config)
        .args(["--database", "nope"])
        .env("PGWARD_TEST_SVC_PASSWORD", &cluster().svc_password)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no [databases.nope]"),
        "{}",
        stderr(&out)
    );
}
