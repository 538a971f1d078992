//! The classifier's walk handles every node kind of PostgreSQL's parse tree
//! explicitly. The compiler checks the match in `src/sql/nodes.rs` is
//! exhaustive; this test checks it stays so by construction: no catch-all arm
//! (which would let a new node kind through unexamined), and every kind named.

const NODES: &str = include_str!("../src/sql/nodes.rs");

fn node_match() -> &'static str {
    let start = NODES
        .find("pub fn node_enum(")
        .expect("nodes.rs defines node_enum");
    let rest = &NODES[start..];
    let end = rest.find("\n    }\n").expect("node_enum ends");
    &rest[..end]
}

#[test]
fn the_node_match_has_no_catch_all_arm() {
    let body = node_match();
    for (i, line) in body.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("").trim();
        assert!(
            !code.starts_with("_ =>") && !code.contains("| _ =>") && !code.starts_with("other =>"),
            "line {} of node_enum is a catch-all arm: {line}",
            i + 1
        );
    }
}

#[test]
fn every_node_kind_is_named() {
    let body = node_match();
    let mut kinds: Vec<&str> = body
        .split("N::")
        .skip(1)
        .filter_map(|s| s.split('(').next())
        .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    // libpg_query 18 has 271 node kinds; each appears in an arm of its own.
    assert!(kinds.len() >= 271, "only {} node kinds named", kinds.len());
}

#[test]
fn node_kinds_the_parser_produces_are_classified_or_refused_by_name() {
    // A statement using many node kinds: the walk reaches every one of them
    // (the census would refuse it otherwise) and the result is a decision.
    let sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) \
               SELECT n, CASE WHEN n > 1 THEN 'a' ELSE NULL END, COALESCE(NULL, n), \
               GREATEST(n, 2), n IS NULL, (n > 1) IS TRUE, ARRAY[n], ROW(n, 1), \
               n::text COLLATE \"C\", count(*) FILTER (WHERE n > 0) OVER (PARTITION BY n), \
               EXISTS (SELECT 1), xmlelement(name x, n), json_object('k' VALUE n), \
               CURRENT_DATE, $1 FROM r GROUP BY GROUPING SETS ((n), ()) ORDER BY 1 LIMIT 5";
    let c = pgward::sql::classify(sql).expect("classified");
    assert!(c.forbidden.is_empty(), "{:?}", c.forbidden);
    // Kinds only an analysed tree has are refused by name, never let through.
    let analysed = NODES.matches("unexpected(\"").count();
    assert!(analysed > 40, "{analysed} analysed-only kinds refused");
}
