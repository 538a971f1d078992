//! Where pgward's view of the session could differ from the server's: client
//! encoding, startup settings, standard_conforming_strings while a change is
//! in flight, prepared statements and portals, and statements the server
//! re-analyses. Each test drives the real server through pgward and checks
//! that the difference cannot be used.

mod common;

use common::*;

fn gateway(role: &'static str) -> Gateway {
    Gateway::start(GatewayOptions {
        role,
        roles: include_str!("../examples/policy.toml").to_string(),
        ..Default::default()
    })
}

#[tokio::test]
async fn refusals_naming_non_ascii_names_arrive_intact() {
    let gw = gateway("reader");
    let client = gw.connect("shop").await;
    for name in ["秘密", "çé\\'", "表' || 'x"] {
        let quoted = name.replace('"', "\"\"");
        let err = client
            .simple_query(&format!("SELECT * FROM internal.\"{quoted}\""))
            .await
            .unwrap_err();
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "42501");
        assert_eq!(
            db.message(),
            format!("pgward: role reader may not read internal.{name}")
        );
    }
}
