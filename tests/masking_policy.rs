//! Decisions about masked columns (pure): a masked column may reach the client
//! only as a plain output column of the top-level SELECT, where pgward masks it
//! in place; every other use is refused unless a role unmasks the column.

use std::collections::BTreeMap;

use pgward::policy::decide::decide;
use pgward::policy::masks::{MaskSpec, Masks};
use pgward::policy::{Policy, SessionView};
use pgward::sql::classify;

const CONFIG: &str = r#"
[roles.reader]
operations = ["select", "copy_out", "insert"]
read = ["public.*"]
write = ["public.orders"]

[roles.support]
operations = ["select"]
read = ["public.*"]
unmask = ["public.customers.phone"]
"#;

const MASKS: &str = r#"
"public.customers.email" = "email"
"public.customers.phone" = { strategy = "partial", keep_last = 4 }
"public.customers.ssn" = "redact"
"public.customers.date_of_birth" = "null"
"public.payments.card_number" = "hash"
"#;

fn verdicts(role: &str, cases: &[(&str, bool)]) {
    verdicts_with(MASKS, role, cases)
}

fn verdicts_with(masks: &str, role: &str, cases: &[(&str, bool)]) {
    let policy = Policy::from_toml(CONFIG).unwrap();
    let raw: BTreeMap<String, MaskSpec> = toml::from_str(masks).unwrap();
    let masks = Masks::compile(&raw).unwrap();
    let path = vec!["public".to_string()];
    let view = SessionView {
        masks: Some(&masks),
        catalog: None,
        database: "shop",
        upstream_database: "shop",
        search_path: &path,
    };
    let roles = policy.roles_of(&[role.to_string()]);
    let mut failures = Vec::new();
    for (sql, allowed) in cases {
        let got = classify(sql).is_ok_and(|c| decide(&roles, &c, &view).is_allowed());
        if got != *allowed {
            failures.push(format!("{role}: expected {}, got {}: {sql}", allowed, got));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn masked_columns_only_as_plain_output_columns() {
    verdicts(
        "reader",
        &[
            ("SELECT email FROM customers", true),
            ("SELECT * FROM customers", true),
            ("SELECT c.ssn AS x FROM customers c", true),
            (
                "SELECT id, phone FROM customers WHERE city = 'Berlin'",
                true,
            ),
            (
                "SELECT c.*, o.total_cents FROM customers c JOIN orders o ON o.customer_id = c.id",
                true,
            ),
            ("SELECT card_number FROM payments", true),
            ("SELECT upper(ssn) FROM customers", false),
            // Renamings that must not lose the column's identity.
            ("SELECT ssn AS x FROM customers ORDER BY x", false),
            ("SELECT ssn FROM customers ORDER BY 1", false),
            ("SELECT id, ssn FROM customers GROUP BY 1, 2", false),
            ("SELECT DISTINCT ON (ssn) id FROM customers", false),
            (
                "SELECT ssn FROM customers FULL JOIN payments USING (ssn)",
                false,
            ),
            (
                "SELECT * FROM customers FULL JOIN payments USING (id)",
                true,
            ),
            (
                "SELECT * FROM customers c FULL JOIN customers d USING (ssn)",
                false,
            ),
            ("SELECT * FROM customers NATURAL JOIN payments", false),
            // Renamed columns cannot be told from attribute notation (`x.f`
            // is `f(x)` when x has no column f) without the catalog's order:
            // refused on a table with masked columns.
            ("SELECT x.d FROM customers AS x(a, b, c, d)", false),
            (
                "SELECT x.a FROM customers AS x(a, b, c, d) WHERE x.d = '1'",
                false,
            ),
            ("SELECT upper(x.a) FROM customers AS x(a)", false),
            ("SELECT (c).ssn FROM customers c", false),
            ("SELECT (c.*).email FROM customers c", false),
            ("SELECT json_object('k' VALUE email) FROM customers", false),
            ("SELECT xmlelement(name x, ssn) FROM customers", false),
            ("SELECT id FROM customers WHERE U&\"\\0073sn\" = '1'", false),
            ("SELECT U&\"\\0073sn\" FROM customers", true),
            ("TABLE customers", true),
            ("SELECT * FROM (TABLE customers) t", false),
            ("SELECT max(ssn) OVER () FROM customers", false),
            ("SELECT id FROM customers, LATERAL upper(ssn) u", false),
            ("SELECT ssn || '' FROM customers", false),
            ("SELECT ssn::text FROM customers", false),
            (
                "SELECT CASE WHEN ssn LIKE '9%' THEN 1 END FROM customers",
                false,
            ),
            ("SELECT string_agg(email, ',') FROM customers", false),
            ("SELECT array_agg(phone) FROM customers", false),
            ("SELECT row_to_json(c) FROM customers c", false),
            ("SELECT to_jsonb(c.*) FROM customers c", false),
            ("SELECT c FROM customers c", false),
            ("SELECT (SELECT ssn FROM customers LIMIT 1)", false),
            ("SELECT ssn FROM customers UNION SELECT 'x'", false),
            ("SELECT id FROM customers WHERE ssn LIKE '9%'", false),
            ("SELECT id FROM customers ORDER BY ssn", false),
            (
                "SELECT count(*) FROM customers GROUP BY date_of_birth",
                false,
            ),
            (
                "SELECT c.id FROM customers c JOIN payments p ON p.card_number = c.ssn",
                false,
            ),
            (
                "WITH x AS (SELECT ssn FROM customers) SELECT * FROM x",
                false,
            ),
            ("SELECT * FROM (SELECT ssn FROM customers) s", false),
            ("COPY customers TO STDOUT", false),
            ("COPY (SELECT ssn FROM customers) TO STDOUT", false),
            (
                "INSERT INTO orders (status) SELECT ssn FROM customers",
                false,
            ),
            ("SELECT * INTO t FROM customers", false),
        ],
    );
}

#[test]
fn unmasked_columns_are_free_for_their_role() {
    verdicts(
        "support",
        &[
            ("SELECT upper(phone) FROM customers", true),
            ("SELECT id FROM customers WHERE phone LIKE '%0123'", true),
            ("SELECT upper(ssn) FROM customers", false),
        ],
    );
}

#[test]
fn allow_predicates_admits_predicates_only() {
    verdicts_with(
        "\"public.customers.ssn\" = { strategy = \"redact\", allow_predicates = true }",
        "reader",
        &[
            ("SELECT id FROM customers WHERE ssn LIKE '9%'", true),
            ("SELECT id FROM customers ORDER BY ssn", true),
            ("SELECT count(*) FROM customers GROUP BY ssn", true),
            (
                "SELECT c.id FROM customers c JOIN payments p ON p.card_number = c.ssn",
                true,
            ),
            ("SELECT id FROM customers WHERE upper(ssn) = 'X'", true),
            ("SELECT upper(ssn) FROM customers", false),
            ("SELECT ssn FROM customers UNION SELECT 'x'", false),
            (
                "SELECT CASE WHEN ssn LIKE '9%' THEN 1 END FROM customers",
                false,
            ),
        ],
    );
}

#[test]
fn quoted_mixed_case_names_are_masked_and_denied() {
    // ORMs create "User"."emailAddress"; a mask written either way covers it.
    for masks in [
        "\"public.User.emailAddress\" = \"email\"\n",
        "\"public.user.emailaddress\" = \"email\"\n",
    ] {
        verdicts_with(
            masks,
            "reader",
            &[
                ("SELECT \"emailAddress\" FROM \"User\"", true),
                ("SELECT upper(\"emailAddress\") FROM \"User\"", false),
                (
                    "SELECT id FROM \"User\" WHERE \"emailAddress\" LIKE 'a%'",
                    false,
                ),
                ("SELECT u FROM \"User\" u", false),
            ],
        );
    }
}
