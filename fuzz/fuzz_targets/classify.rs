//! The classifier and the policy decision on any text: they return a value or
//! an error, never panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgward::policy::decide::decide;
use pgward::policy::{Policy, SessionView};
use pgward::sql::classify;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    let Ok(c) = classify(sql) else { return };
    let policy = Policy::from_toml(
        "[roles.r]\noperations = [\"select\", \"insert\"]\nread = [\"public.*\", \"!public.secret\"]\nwrite = [\"public.t\"]\ndeny_columns = [\"public.e.salary\"]\ncatalog = true\n",
    )
    .unwrap();
    let path = vec!["public".to_string(), "app".to_string()];
    let view = SessionView {
        catalog: None,
        masks: None, database: "db", upstream_database: "db", search_path: &path };
    let _ = decide(&policy.roles_of(&["r".to_string()]), &c, &view);
});
