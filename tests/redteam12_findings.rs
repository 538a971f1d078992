//! Red team 12: token logins (JWTs as passwords: pgward's own Ed25519
//! tokens and OIDC issuers' RS256/ES256 tokens), against a real
//! PostgreSQL.
//!
//! Each `f*` test is one confirmed finding and asserts the SAFE behaviour,
//! so it fails until the finding is fixed. The `held_*` tests are attacks
//! that pgward withstood when this was written ("held"); they guard
//! against regressions.
//!
//! The attacker holds (or can obtain) some valid token, has read the
//! source, and wants more than the token grants: a longer session, another
//! identity's rights, or to hurt other clients.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::raw::{self, frame, Msg, Raw};
use common::*;
use serde_json::{json, Value};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A role that may read and write public tables and call the time
/// functions the tests use.
const ROLES: &str = r#"[roles.rw]
operations = ["select", "insert", "update", "delete", "transaction", "set", "show", "copy_in", "copy_out", "ddl"]
read = ["public.*"]
write = ["public.*"]
functions = ["pg_sleep"]
catalog = true

[roles.reader]
operations = ["select"]
read = ["public.products"]
"#;

/// A fresh directory holding pgward's own signing key (`own.key`).
fn key_dir() -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    token_key(&dir);
    dir
}

/// A gateway taking pgward's own tokens in clear on loopback, with
/// `extra` appended to its config.
fn own_gateway(dir: &Path, extra: &str, workers: usize) -> Gateway {
    Gateway::start(GatewayOptions {
        role: "rw",
        roles: ROLES.into(),
        workers,
        extra_config: format!(
            r#"[auth]
allow_plaintext_loopback = true
skew_secs = 0

[auth.tokens]
key_file = "{}"
max_ttl = "1h"
{extra}
"#,
            dir.join("own.key").display()
        ),
        ..Default::default()
    })
}

/// Signs `claims` with the own key in `dir`.
fn mint(dir: &Path, claims: &Value) -> String {
    let key = pgward::config::auth::read_signing_key(&dir.join("own.key")).unwrap();
    pgward::auth::jwt::sign_eddsa(&key.pair, &key.kid, claims.as_object().unwrap())
}

/// Standard own-token claims for `sub` with `roles`, living `ttl` seconds.
fn own_claims(sub: &str, roles: &[&str], ttl: u64) -> Value {
    let t = now();
    json!({"iss": "pgward", "aud": "pgward", "sub": sub, "roles": roles,
           "iat": t, "nbf": t, "exp": t + ttl, "jti": "rt12"})
}

/// Logs in as `user` giving `password` in a cleartext password message;
/// Ok after ReadyForQuery, Err with the ErrorResponse (or the first
/// unexpected message).
fn token_login(port: u16, user: &str, password: &str, db: &str) -> Result<Raw, Msg> {
    let mut r = Raw::connect(port);
    r.send(&raw::startup_packet(&[("user", user), ("database", db)]));
    let m = r.recv().expect("auth request");
    if m.tag != b'R' || m.body[..4] != [0, 0, 0, 3] {
        return Err(m);
    }
    let mut body = password.as_bytes().to_vec();
    body.push(0);
    r.send(&frame(b'p', &body));
    loop {
        let m = r.recv().expect("a message after the password");
        match m.tag {
            b'K' => r.backend_pid = Some(u32::from_be_bytes(m.body[..4].try_into().unwrap())),
            b'Z' => return Ok(r),
            b'E' => return Err(m),
            _ => {}
        }
    }
}

fn message(m: &Msg) -> String {
    m.field(b'M').unwrap_or_else(|| format!("{m:?}"))
}

/// F1 (high): statements pipelined before `exp` keep running after it, for
/// minutes: the session outlives its token (and an operator's terminate).
///
/// At `exp` the watchdog (`Slot::expire` -> `Slot::end`) only calls
/// `shutdown(SHUT_RD)` on the client socket. A client pump blocked writing
/// to a full upstream socket does not notice until that write completes;
/// then, on EOF, `client_side_end` writes Terminate *behind* everything
/// already forwarded (blocking again until the server has read it all),
/// and only after both pumps end does `run` send the cancel. So every
/// statement sitting in the upstream socket buffers (megabytes on
/// loopback: tens of thousands of small statements) still runs, one by
/// one, with its results relayed to the client, long after `exp`. An agent
/// pipelines a few MB of cheap slow statements (or writes, `DELETE ...
/// WHERE id = n`) before its token expires, or before an operator's `POST
/// /v1/sessions/{id}/terminate`, and they keep running. Here: 100,000
/// `SELECT pg_sleep(0.01), ...` sent in the first second of a 3 s token;
/// statements still run 10+ s after `exp` (until the test stops reading).
///
/// Fix: on expiry/terminate, send the upstream cancel at once and close
/// (or shut down) the upstream socket instead of queueing Terminate behind
/// the pipeline; have the pump check `slot.is_terminated()` before each
/// write upstream and stop forwarding buffered statements.
#[test]
fn f1_pipelined_statements_run_long_after_the_token_expired() {
    let dir = key_dir();
    let gw = own_gateway(&dir, "", 1);
    let claims = own_claims("rt12-pipe", &["rw"], 3);
    let exp = claims["exp"].as_u64().unwrap();
    let token = mint(&dir, &claims);
    let mut r = token_login(gw.port, "rt12-pipe", &token, "shop")
        .unwrap_or_else(|m| panic!("token login: {}", message(&m)));
    // Megabytes of small, slow statements: they fill the upstream socket
    // buffers behind the one the server runs.
    let q = raw::query("SELECT pg_sleep(0.01), extract(epoch FROM clock_timestamp())::bigint");
    let mut w = r.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let batch = q.repeat(1000);
        for _ in 0..100 {
            if w.write_all(&batch).is_err() {
                return;
            }
        }
    });
    r.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut latest = 0u64;
    let mut rows = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let Some(m) = r.recv() else { break };
        if m.tag == b'D' {
            rows += 1;
            let (cells, _) = raw::rows(std::slice::from_ref(&m));
            latest = latest.max(cells[1].parse().unwrap());
        }
    }
    assert!(
        latest <= exp + 1,
        "{rows} statements ran, the last {}s after the token expired",
        latest.saturating_sub(exp)
    );
    let _ = r.s.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
}

/// F2 (medium): revoking an issuer by reload does not end its sessions.
///
/// An operator who learns that pgward's own signing key (or an IdP) is
/// compromised removes `[auth.tokens]` (or the `[[auth.oidc]]` issuer, or
/// swaps the key) and reloads. New logins with forged tokens stop, but
/// every session already opened with them keeps running with the roles
/// its token gave, until `exp` (up to `max_ttl`, 1 h by default): the
/// reload path (`ClientPump::follow_reload`, relay.rs) takes
/// `r.token_roles.clone().or(configured)` and never asks whether the
/// token's issuer (or key, or role mapping) is still configured. A
/// `[[users]]` user removed by the same reload is ended at once ("user
/// ... is no longer configured").
///
/// Fix: keep the issuer (and kid) in the session; on reload, end a token
/// session whose issuer is gone or whose key is no longer in the issuer's
/// set (and re-map OIDC claims through the new role map).
#[test]
fn f2_a_reload_that_removes_the_tokens_issuer_leaves_its_sessions_running() {
    let dir = key_dir();
    let gw = own_gateway(&dir, "", 1);
    let token = mint(&dir, &own_claims("rt12-revoked", &["rw"], 600));
    let mut r = token_login(gw.port, "rt12-revoked", &token, "shop")
        .unwrap_or_else(|m| panic!("token login: {}", message(&m)));
    assert_eq!(raw::rows(&r.query("SELECT 1")).0, vec!["1"]);
    // The operator removes [auth] altogether (the key leaked).
    let config = gw.config_text();
    let cut = config.find("[auth]").unwrap();
    assert!(gw.reload(&config[..cut]), "{}", gw.log_text());
    assert!(
        token_login(gw.port, "rt12-revoked", &token, "shop").is_err(),
        "new logins stop"
    );
    // Fixed: the session is ended (FATAL 28000, then the connection
    // closes; the raw helper panics on the closed connection).
    let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.query("SELECT 2")));
    if let Ok(reply) = reply {
        assert_ne!(
            raw::rows(&reply).0,
            vec!["2"],
            "the session of a revoked issuer's token still runs statements"
        );
    }
}

/// F3 (low): with tokens on, which user names are `[[users]]` shows in
/// the first message.
///
/// Unknown users go through a mock SCRAM exchange "so a client cannot tell
/// which user names exist" (client_login.rs). With `[auth]` issuers
/// configured, a name in `[[users]]` gets AuthenticationSASL, every other
/// name AuthenticationCleartextPassword (or, off TLS, "a token is accepted
/// only over TLS"): one packet enumerates the SCRAM accounts, which are
/// then the ones worth a password-guessing effort.
///
/// Fix: make the answer independent of the name; e.g. offer SASL to all
/// and let token clients pick a dedicated mechanism, or (over TLS) ask
/// every name for a cleartext password and check SCRAM users' passwords
/// against their verifier.
#[test]
fn f3_tokens_on_tell_scram_user_names_from_others() {
    let dir = key_dir();
    let gw = own_gateway(&dir, "", 1);
    let first = |user: &str| {
        let mut r = Raw::connect(gw.port);
        r.send(&raw::startup_packet(&[
            ("user", user),
            ("database", "shop"),
        ]));
        let m = r.recv().unwrap();
        (m.tag, m.body.get(..4).map(|b| b.to_vec()))
    };
    assert_eq!(
        first("agent"),
        first("no-such-user"),
        "the first answer differs for a [[users]] name and an unknown one"
    );
}

/// Held: header and claim tricks against the verifier itself.
#[test]
fn held_algorithm_key_and_claim_confusions() {
    use pgward::auth::jwt::{check_claims, decode, Expect, Jwks, JwtError};
    use ring::signature::{self, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    // ES256 key and a DER-encoded signature: refused (only fixed r||s).
    let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let ec = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let p = ec.public_key().as_ref();
    let jwk = |extra: Value| {
        let mut j = json!({"kty": "EC", "kid": "e", "crv": "P-256",
            "x": b64(&p[1..33]), "y": b64(&p[33..65])});
        j.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<Jwks>(json!({ "keys": [j] })).unwrap()
    };
    let t = 1_000_000u64;
    let claims = json!({"iss": "https://i", "aud": "a", "sub": "s", "exp": t + 60});
    let signed = format!(
        "{}.{}",
        b64(br#"{"alg":"ES256","kid":"e"}"#),
        b64(claims.to_string().as_bytes())
    );
    let der = ec.sign(&rng, signed.as_bytes()).unwrap();
    let token = format!("{signed}.{}", b64(der.as_ref()));
    assert_eq!(
        jwk(json!({})).verify(&decode(&token).unwrap()),
        Err(JwtError::Signature)
    );
    // A key for encryption, another curve, or stated for another alg.
    for extra in [
        json!({"use": "enc"}),
        json!({"crv": "P-384"}),
        json!({"alg": "RS256"}),
    ] {
        assert!(matches!(
            jwk(extra.clone()).verify(&decode(&token).unwrap()),
            Err(JwtError::UnknownKey(_))
        ));
    }
    // "alg" twice in the header: refused as malformed (serde's duplicate
    // field), whatever the order.
    for h in [
        r#"{"alg":"none","alg":"ES256","kid":"e"}"#,
        r#"{"alg":"ES256","alg":"none","kid":"e"}"#,
    ] {
        let tok = format!("{}.{}.AA", b64(h.as_bytes()), b64(b"{}"));
        assert!(matches!(decode(&tok), Err(JwtError::Malformed(_))), "{h}");
    }
    // exp as a string, negative, huge; aud with odd members.
    let x = Expect {
        issuer: "https://i",
        audience: "a",
        now: t,
        skew: 0,
        max_ttl: Some(3600),
    };
    let check = |c: Value| check_claims(c.as_object().unwrap(), &x);
    let base = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        c
    };
    assert_eq!(
        check(base("exp", json!((t + 60).to_string()))),
        Err(JwtError::Claim("exp"))
    );
    assert_eq!(check(base("exp", json!(-1))), Err(JwtError::Claim("exp")));
    assert_eq!(check(base("exp", json!(1e300))), Err(JwtError::TooLong));
    assert_eq!(
        check(base("exp", json!(18446744073709551615u64))),
        Err(JwtError::TooLong)
    );
    assert_eq!(
        check(base("aud", json!([null, 1, ["a"], {"a": 1}]))),
        Err(JwtError::Audience)
    );
    assert_eq!(
        check(base("iat", json!(t + 10))),
        Err(JwtError::NotYetValid)
    );
    // A duplicated "exp" in the payload: the last one counts, and it is
    // what was signed (no other parser reads the claims).
    let dup = r#"{"iss":"https://i","aud":"a","exp":1,"exp":1000060}"#;
    let m: serde_json::Map<String, Value> = serde_json::from_str(dup).unwrap();
    assert_eq!(check_claims(&m, &x), Ok(t + 60));
}

/// Held: with tokens on, `[[users]]` still log in with SCRAM, a token
/// whose subject is a `[[users]]` name cannot be used for it (the name
/// takes the SCRAM path), a token is refused in clear when loopback is not
/// allowed, and pgward's own token cannot name an unconfigured role.
#[test]
fn held_scram_users_and_the_token_channel() {
    let dir = key_dir();
    let gw = own_gateway(&dir, "", 1);
    // (With tokens on, every name is asked for its password in clear, so
    // the first reply tells no names apart: [[users]] passwords are
    // checked against their SCRAM verifiers.)
    let out = psql(&gw.dsn("shop"), &["-At", "-c", "SELECT 1"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let token = mint(&dir, &own_claims("agent", &["rw"], 600));
    let e = token_login(gw.port, "agent", &token, "shop").err().unwrap();
    assert!(
        message(&e).contains("password authentication failed"),
        "a token never logs in as a [[users]] name: {}",
        message(&e)
    );
    let bad = mint(&dir, &own_claims("rt12-x", &["superuser"], 600));
    let e = token_login(gw.port, "rt12-x", &bad, "shop").err().unwrap();
    assert!(message(&e).contains("not configured"), "{}", message(&e));
    // Not loopback-allowed: refused before any password is asked for.
    let strict = Gateway::start(GatewayOptions {
        role: "rw",
        roles: ROLES.into(),
        workers: 1,
        extra_config: format!(
            "[auth]\n[auth.tokens]\nkey_file = \"{}\"\n",
            dir.join("own.key").display()
        ),
        ..Default::default()
    });
    let good = mint(&dir, &own_claims("rt12-y", &["rw"], 600));
    let e = token_login(strict.port, "rt12-y", &good, "shop")
        .err()
        .unwrap();
    // Off TLS every name gets SCRAM, a token's name as a [[users]] one
    // (the password is never asked for in clear; a failed login's hint
    // says a token needs TLS).
    assert_eq!(e.tag, b'R', "asked for SCRAM like any name: {e:?}");
    let out = psql(
        &format!(
            "host=127.0.0.1 port={} user=rt12-y password={good} dbname=shop sslmode=disable",
            strict.port
        ),
        &["-c", "SELECT 1"],
        "",
    );
    assert!(stderr(&out).contains("only over TLS"), "{}", stderr(&out));
    assert!(!strict.log_text().contains(&good[good.len() - 20..]));
}

const READ_TOKEN: &str = "rt12-read-only-token-0123456789";
const DBA_TOKEN: &str = "rt12-reviewer-dba-token-0123456789";

/// Signs `claims` as RS256 with the test RSA key (kid `rsa1`).
fn sign_rs256(claims: &Value) -> String {
    use ring::signature::{self, RsaKeyPair};
    let rsa = RsaKeyPair::from_der(include_bytes!("support/rsa2048-test-key.der")).unwrap();
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": "rsa1"}).to_string());
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut sig = vec![0u8; rsa.public().modulus_len()];
    rsa.sign(
        &signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The RSA test key's JWKS (kid `rsa1`).
fn rsa_jwks() -> String {
    use ring::signature::{self, RsaKeyPair};
    let rsa = RsaKeyPair::from_der(include_bytes!("support/rsa2048-test-key.der")).unwrap();
    let n: signature::RsaPublicKeyComponents<Vec<u8>> = rsa.public().into();
    json!({"keys": [{"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(&n.n), "e": URL_SAFE_NO_PAD.encode(&n.e)}]})
    .to_string()
}

/// F4 (medium): subjects of different issuers are one pgward user: an
/// approval granted to issuer A's "alice" is spent by issuer B's "alice".
///
/// A token login becomes a `UserConfig` named by the bare subject
/// (`TokenLogin::run`); the issuer is kept only for the audit record.
/// Everything keyed by the user name — approval keys (`book::key(user,
/// database, sql, ...)`), the per-user request quota, the admin API's
/// sessions, the audit log's `user` — cannot tell two issuers' subjects
/// apart. With a corporate IdP and a second, lower-trust issuer (a CI
/// provider, another tenant, an IdP whose `preferred_username` or `email`
/// users choose), whoever can get the second issuer to say `sub: alice`
/// takes alice's approvals (retry mode: the first identical statement
/// after approval runs, whoever sends it) and can exhaust her request
/// quota. Here both issuers are file JWKS; the second issuer's "alice"
/// runs the `DELETE` a reviewer approved for the first's.
///
/// Fix: name token users by issuer and subject (e.g. key approvals,
/// quotas and the registry on `(issuer, subject)`; refuse configs where
/// two issuers could produce the same user name unless an explicit
/// `user_prefix` per issuer separates them).
#[test]
fn f4_another_issuers_subject_spends_an_approval() {
    let dir = key_dir();
    std::fs::write(dir.join("a.json"), rsa_jwks()).unwrap();
    // Issuer B: pgward's own key as an OIDC issuer's (EdDSA, file JWKS).
    let own = pgward::config::auth::read_signing_key(&dir.join("own.key")).unwrap();
    let b_jwks = json!({"keys": [pgward::auth::jwt::eddsa_jwk(&own.pair, &own.kid)]});
    std::fs::write(dir.join("b.json"), b_jwks.to_string()).unwrap();
    let table = format!("rt12_coll_{}", std::process::id());
    cluster().sql(
        "shop",
        &format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int); INSERT INTO {table} SELECT generate_series(1, 5); GRANT ALL ON {table} TO PUBLIC;"),
    );
    let admin_port = free_port();
    let state = tempfile::tempdir().unwrap().keep();
    let gw = Gateway::start(GatewayOptions {
        role: "rw",
        roles: format!(
            r#"{ROLES}
[roles.ops]
operations = ["select", "delete", "transaction"]
read = ["public.*"]
write = ["public.*"]

[roles.ops.approval]
require = ["delete_without_where"]
mode = "retry"
"#
        ),
        workers: 1,
        extra_config: format!(
            r#"[admin]
listen = "127.0.0.1:{admin_port}"
token_env = "RT12_READ"
state_dir = "{state}"

[[admin.reviewers]]
name = "dba"
token_env = "RT12_DBA"

[auth]
allow_plaintext_loopback = true

[[auth.oidc]]
issuer = "https://corp.example"
audience = "pgward"
jwks_file = "{a}"
[auth.oidc.roles]
"ops" = ["ops"]

[[auth.oidc]]
issuer = "https://ci.example"
audience = "pgward"
jwks_file = "{b}"
[auth.oidc.roles]
"ops" = ["ops"]
"#,
            state = state.display(),
            a = dir.join("a.json").display(),
            b = dir.join("b.json").display(),
        ),
        env: vec![
            ("RT12_READ".into(), READ_TOKEN.into()),
            ("RT12_DBA".into(), DBA_TOKEN.into()),
        ],
        ..Default::default()
    });
    let url = format!("http://127.0.0.1:{admin_port}");
    let api = |method: &str, path: &str, token: &str, body: Option<&str>| {
        let (s, b) = pgward::admin::client::call(
            &format!("{url}{path}"),
            method,
            Some(token),
            body.map(str::as_bytes),
            Duration::from_secs(10),
        )
        .unwrap();
        (
            s,
            serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
        )
    };
    let t = now();
    let claims = |iss: &str| {
        json!({"iss": iss, "aud": "pgward", "sub": "alice", "groups": ["ops"],
               "exp": t + 600, "iat": t})
    };
    let corp = sign_rs256(&claims("https://corp.example"));
    let ci = pgward::auth::jwt::sign_eddsa(
        &own.pair,
        &own.kid,
        claims("https://ci.example").as_object().unwrap(),
    );
    let delete = format!("DELETE FROM {table}");
    // The real alice asks; a reviewer approves her request.
    let mut a = token_login(gw.port, "alice", &corp, "shop")
        .unwrap_or_else(|m| panic!("corp alice: {}", message(&m)));
    let (_, err) = raw::rows(&a.query(&delete));
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("approval required")),
        "{err:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        let (_, v) = api("GET", "/v1/approvals", READ_TOKEN, None);
        if let Some(r) = v["approvals"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["state"] == "pending")
        {
            break r["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no pending request");
        std::thread::sleep(Duration::from_millis(20));
    };
    let (s, v) = api(
        "POST",
        &format!("/v1/approvals/{id}/approve"),
        DBA_TOKEN,
        Some(r#"{"reason":"ok for alice"}"#),
    );
    assert_eq!(s, 200, "{v}");
    // The other issuer's "alice" sends the identical statement first.
    let mut b = token_login(gw.port, "alice", &ci, "shop")
        .unwrap_or_else(|m| panic!("ci alice: {}", message(&m)));
    let reply = b.query(&delete);
    let left = cluster().sql("shop", &format!("SELECT count(*) FROM {table}"));
    cluster().sql("shop", &format!("DROP TABLE IF EXISTS {table}"));
    assert!(
        raw::rows(&reply).1.is_some(),
        "issuer B's alice ran the DELETE approved for issuer A's alice ({} rows left)",
        left.trim()
    );
}
