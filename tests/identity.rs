//! Tokens as Postgres passwords, end to end: pgward's own tokens
//! (`pgward token keygen` and `issue`) with psql and tokio-postgres; the
//! session ended when its token expires, idle and inside a transaction;
//! OIDC tokens from an RSA and an EC key in a JWKS file: valid, expired,
//! not yet valid, wrong audience, wrong issuer, bad signature, `alg: none`,
//! HS256 signed with the public key, an unknown kid, groups mapping to no
//! role; cleartext refused off TLS; tokens never in the log.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.example.com";

const ROLES: &str = r#"[roles.reader]
operations = ["select"]
read = ["public.products"]

[roles.nothing]
"#;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Keys and the files the gateway reads.
struct Keys {
    dir: PathBuf,
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap().keep();
    let rsa = RsaKeyPair::from_der(include_bytes!("support/rsa2048-test-key.der")).unwrap();
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let n: signature::RsaPublicKeyComponents<Vec<u8>> = rsa.public().into();
    let p = ec.public_key().as_ref();
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256",
         "n": URL_SAFE_NO_PAD.encode(&n.n), "e": URL_SAFE_NO_PAD.encode(&n.e)},
        {"kty": "EC", "kid": "ec1", "crv": "P-256",
         "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..65])}
    ]});
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    token_key(&dir);
    Keys { dir, rsa, ec }
}

impl Keys {
    /// A token signed as `alg` (RS256, ES256) under `kid`.
    fn sign(&self, alg: &str, kid: &str, claims: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": kid}).to_string());
        let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let rng = SystemRandom::new();
        let sig = match alg {
            "RS256" => {
                let mut sig = vec![0u8; self.rsa.public().modulus_len()];
                self.rsa
                    .sign(
                        &signature::RSA_PKCS1_SHA256,
                        &rng,
                        signed.as_bytes(),
                        &mut sig,
                    )
                    .unwrap();
                sig
            }
            _ => self
                .ec
                .sign(&rng, signed.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
        };
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// A gateway taking pgward's own tokens and the test issuer's.
fn gateway(k: &Keys, plaintext_loopback: bool, tls: bool) -> Gateway {
    Gateway::start(GatewayOptions {
        role: "reader",
        roles: ROLES.into(),
        tls,
        extra_config: format!(
            r#"[auth]
allow_plaintext_loopback = {plaintext_loopback}
skew_secs = 0

[auth.tokens]
key_file = "{own}"
max_ttl = "1h"

[[auth.oidc]]
issuer = "{ISSUER}"
audience = "pgward-test"
jwks_file = "{jwks}"
roles_claim = "groups"
max_ttl = "1h"

[auth.oidc.roles]
"db-readers" = ["reader"]
"#,
            own = k.dir.join("own.key").display(),
            jwks = k.dir.join("jwks.json").display(),
        ),
        ..Default::default()
    })
}

fn issue(gw: &Gateway, subject: &str, roles: &str, ttl: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["token", "issue", "--config"])
        .arg(gw.dir.path().join("pgward.toml"))
        .args(["--subject", subject, "--roles", roles, "--ttl", ttl])
        .env("PGWARD_TEST_SVC_PASSWORD", &cluster().svc_password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn dsn(gw: &Gateway, user: &str, token: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} password={token} dbname=shop sslmode=disable",
        gw.port
    )
}

/// The FATAL message a login with `token` as `user` gets, or None.
fn refusal(gw: &Gateway, user: &str, token: &str) -> Option<String> {
    let out = psql(&dsn(gw, user, token), &["-c", "SELECT 1"], "");
    (!out.status.success()).then(|| stderr(&out))
}

#[tokio::test]
async fn pgwards_own_tokens_log_in_with_psql_and_tokio_postgres() {
    let k = keys();
    let gw = gateway(&k, true, false);
    let token = issue(&gw, "ci-job-42", "reader", "15m");
    let out = psql(
        &dsn(&gw, "ci-job-42", &token),
        &["-At", "-c", "SELECT count(*) > 0 FROM products"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "t");
    // The role's policy applies.
    let out = psql(
        &dsn(&gw, "ci-job-42", &token),
        &["-c", "SELECT * FROM customers"],
        "",
    );
    assert!(stderr(&out).contains("pgward:"), "{}", stderr(&out));
    let mut c = tokio_postgres::Config::new();
    c.host("127.0.0.1")
        .port(gw.port)
        .user("ci-job-42")
        .password(token.as_str())
        .dbname("shop");
    let (client, conn) = c.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let n: i64 = client
        .query_one("SELECT count(*) FROM products", &[])
        .await
        .unwrap()
        .get(0);
    assert!(n > 0);
    // Another user name, or a role the config lacks, or no roles at all.
    assert!(refusal(&gw, "someone-else", &token)
        .unwrap()
        .contains("subject is \"ci-job-42\""));
    let empty = issue(&gw, "ci-job-43", "nothing", "15m");
    assert!(refusal(&gw, "ci-job-43", &empty)
        .unwrap()
        .contains("grant nothing"));
    // The token never reaches the log.
    assert!(!gw.log_text().contains(&token));
    assert!(!gw.log_text().contains(&token[token.len() - 20..]));
}

#[tokio::test]
async fn an_expired_token_ends_idle_and_busy_sessions() {
    let k = keys();
    let gw = gateway(&k, true, false);
    let token = issue(&gw, "ci-short", "reader", "3s");
    let mut c = tokio_postgres::Config::new();
    c.host("127.0.0.1")
        .port(gw.port)
        .user("ci-short")
        .password(token.as_str())
        .dbname("shop");
    let (idle, conn) = c.connect(tokio_postgres::NoTls).await.unwrap();
    let idle_conn = tokio::spawn(conn);
    let (busy, conn) = c.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    busy.batch_execute("BEGIN").await.unwrap();
    busy.query("SELECT id FROM products", &[]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The idle session was told and closed without sending anything.
    let ended = idle_conn.await.unwrap();
    let e = ended.expect_err("the connection ends with an error");
    let message = e.as_db_error().map(|d| d.message().to_string());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("token expired")),
        "{e:?}"
    );
    assert!(idle.is_closed());
    // The one inside a transaction too: its next statement finds it gone.
    assert!(busy.query("SELECT 1", &[]).await.is_err());
    // And the token cannot open a new one.
    assert!(refusal(&gw, "ci-short", &token)
        .unwrap()
        .contains("expired"));
}

#[test]
fn oidc_tokens_are_checked_claim_by_claim() {
    let k = keys();
    let gw = gateway(&k, true, false);
    let t = now();
    let claims = |f: &dyn Fn(&mut Value)| {
        let mut c = json!({"iss": ISSUER, "aud": ["pgward-test"], "sub": "alice",
            "groups": ["db-readers", "staff"], "exp": t + 600, "nbf": t - 5, "iat": t - 5});
        f(&mut c);
        c
    };
    let valid = k.sign("RS256", "rsa1", &claims(&|_| {}));
    assert_eq!(refusal(&gw, "alice", &valid), None);
    assert_eq!(
        refusal(&gw, "alice", &k.sign("ES256", "ec1", &claims(&|_| {}))),
        None
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            k.sign("RS256", "rsa1", &claims(&|c| c["exp"] = json!(t - 10))),
            "expired",
        ),
        (
            "not yet valid",
            k.sign("RS256", "rsa1", &claims(&|c| c["nbf"] = json!(t + 300))),
            "not valid yet",
        ),
        (
            "wrong audience",
            k.sign("RS256", "rsa1", &claims(&|c| c["aud"] = json!("other"))),
            "audience",
        ),
        (
            "wrong issuer",
            k.sign(
                "RS256",
                "rsa1",
                &claims(&|c| c["iss"] = json!("https://evil.example")),
            ),
            "issuer",
        ),
        (
            "too long",
            k.sign("RS256", "rsa1", &claims(&|c| c["exp"] = json!(t + 86_400))),
            "lives longer",
        ),
        (
            "no role",
            k.sign(
                "RS256",
                "rsa1",
                &claims(&|c| c["groups"] = json!(["staff"])),
            ),
            "maps to no pgward role",
        ),
        (
            "unknown kid",
            k.sign("RS256", "rsa9", &claims(&|_| {})),
            "no key of the issuer",
        ),
        (
            "key of another kind",
            k.sign("ES256", "rsa1", &claims(&|_| {})),
            "no key of the issuer",
        ),
    ];
    for (what, token, says) in &cases {
        let r = refusal(&gw, "alice", token).unwrap_or_else(|| panic!("{what}: logged in"));
        assert!(r.contains(says), "{what}: {r}");
    }
    // A bad signature, alg none, and HS256 keyed with the RSA public key.
    let mut parts: Vec<String> = valid.split('.').map(String::from).collect();
    let mut sig = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
    sig[10] ^= 1;
    parts[2] = URL_SAFE_NO_PAD.encode(sig);
    let tampered = parts.join(".");
    assert!(refusal(&gw, "alice", &tampered)
        .unwrap()
        .contains("signature does not verify"));
    let body = valid.split('.').nth(1).unwrap();
    let none = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
    assert!(refusal(&gw, "alice", &none)
        .unwrap()
        .contains("algorithm \"none\""));
    let n: signature::RsaPublicKeyComponents<Vec<u8>> = k.rsa.public().into();
    let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"rsa1"}"#);
    let input = format!("{head}.{body}");
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &n.n),
        input.as_bytes(),
    );
    let hs = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    assert!(refusal(&gw, "alice", &hs).unwrap().contains("HS256"));
    // No refusal echoes the token.
    for (_, token, _) in &cases {
        assert!(!gw.log_text().contains(token.as_str()));
    }
}

#[test]
fn a_token_travels_in_clear_only_when_allowed() {
    let k = keys();
    let gw = gateway(&k, false, true);
    let token = issue(&gw, "ci-tls", "reader", "15m");
    let r = refusal(&gw, "ci-tls", &token).expect("refused off TLS");
    assert!(r.contains("only over TLS"), "{r}");
    let tls = format!(
        "host=127.0.0.1 port={} user=ci-tls password={token} dbname=shop sslmode=require",
        gw.port
    );
    let out = psql(&tls, &["-At", "-c", "SELECT 1"], "");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// An HTTPS server (the test cluster's certificate for 127.0.0.1) serving
/// whatever JWKS `jwks` holds; counts the requests.
fn jwks_server(
    jwks: std::sync::Arc<std::sync::Mutex<String>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> u16 {
    use std::io::{Read, Write};
    let tls_dir = cluster().tls_dir.clone();
    let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(tls_dir.join("pgward.crt")).unwrap(),
    ))
    .collect::<Result<_, _>>()
    .unwrap();
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(tls_dir.join("pgward.key")).unwrap(),
    ))
    .unwrap()
    .unwrap();
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut s = rustls::StreamOwned::new(conn, tcp);
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = jwks.lock().unwrap().clone();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    });
    port
}

#[test]
fn keys_fetched_over_https_follow_a_rotation_without_fetching_in_a_loop() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let k = keys();
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(k.dir.join("jwks.json")).unwrap()).unwrap();
    let only = |kid: &str| {
        json!({"keys": all["keys"].as_array().unwrap().iter().filter(|j| j["kid"] == kid).collect::<Vec<_>>()})
            .to_string()
    };
    let served = Arc::new(Mutex::new(only("rsa1")));
    let hits = Arc::new(AtomicUsize::new(0));
    let port = jwks_server(served.clone(), hits.clone());
    let gw = Gateway::start(GatewayOptions {
        role: "reader",
        roles: ROLES.into(),
        extra_config: format!(
            r#"[auth]
allow_plaintext_loopback = true
refetch_secs = 2

[[auth.oidc]]
issuer = "{ISSUER}"
audience = "pgward-test"
jwks_url = "https://127.0.0.1:{port}/jwks"
jwks_ca_file = "{}"

[auth.oidc.roles]
"db-readers" = ["reader"]
"#,
            cluster().tls_dir.join("ca.crt").display()
        ),
        ..Default::default()
    });
    let t = now();
    let claims = json!({"iss": ISSUER, "aud": "pgward-test", "sub": "bob",
        "groups": ["db-readers"], "exp": t + 600});
    assert_eq!(refusal(&gw, "bob", &k.sign("RS256", "rsa1", &claims)), None);
    let fetched = hits.load(Ordering::SeqCst);
    assert!(fetched >= 1);
    // The issuer rotates to its EC key: a token naming it makes pgward
    // fetch again, and it logs in.
    *served.lock().unwrap() = only("ec1");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(refusal(&gw, "bob", &k.sign("ES256", "ec1", &claims)), None);
    assert_eq!(hits.load(Ordering::SeqCst), fetched + 1);
    // Unknown kids in a burst: at most one fetch per refetch_secs.
    let burst = std::time::Instant::now();
    for _ in 0..5 {
        let r = refusal(&gw, "bob", &k.sign("RS256", "nope", &claims)).unwrap();
        assert!(r.contains("no key of the issuer"), "{r}");
    }
    let during = hits.load(Ordering::SeqCst) - (fetched + 1);
    let windows = burst.elapsed().as_secs() / 2 + 1;
    assert!(
        during as u64 <= windows,
        "{during} fetches in {:?}",
        burst.elapsed()
    );
}

#[test]
fn psql_with_pgpassword_is_ended_when_its_token_expires() {
    let k = keys();
    let gw = gateway(&k, true, false);
    for (what, script) in [
        ("idle", "SELECT 1;\n\\! sleep 4\nSELECT 2;\n"),
        (
            "in a transaction",
            "BEGIN;\nSELECT 1;\n\\! sleep 4\nSELECT 2;\nCOMMIT;\n",
        ),
    ] {
        let token = issue(&gw, "ci-psql", "reader", "3s");
        let out = Command::new("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1"])
            .arg(format!(
                "host=127.0.0.1 port={} user=ci-psql dbname=shop sslmode=disable",
                gw.port
            ))
            .env("PGPASSWORD", &token)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(script.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(!out.status.success(), "{what}: {}", stdout(&out));
        assert!(
            stdout(&out).lines().any(|l| l == "1"),
            "{what}: {}",
            stdout(&out)
        );
        assert!(
            stderr(&out).contains("the session's token expired"),
            "{what}: {}",
            stderr(&out)
        );
        assert!(
            !stdout(&out).lines().any(|l| l == "2"),
            "{what}: the statement after expiry ran"
        );
    }
}

#[test]
fn the_audit_log_names_the_tokens_subject_issuer_and_jti_never_the_token() {
    let k = keys();
    let audit = tempfile::tempdir().unwrap();
    let gw = Gateway::start(GatewayOptions {
        role: "reader",
        roles: ROLES.into(),
        extra_config: format!(
            "[auth]\nallow_plaintext_loopback = true\n\n[auth.tokens]\nkey_file = \"{}\"\n\n[audit]\ndir = \"{}\"\n",
            k.dir.join("own.key").display(),
            audit.path().display()
        ),
        ..Default::default()
    });
    let token = issue(&gw, "ci-audited", "reader", "10m");
    let out = psql(
        &dsn(&gw, "ci-audited", &token),
        &["-c", "SELECT count(*) FROM products"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mine = common::audit::session_records(audit.path(), |rs| {
        rs.iter()
            .any(|r| r["kind"] == "connect" && r["user"] == "ci-audited")
    });
    let connect = mine.iter().find(|r| r["kind"] == "connect").unwrap();
    assert_eq!(connect["auth"], "token");
    assert_eq!(connect["issuer"], "pgward");
    assert_eq!(connect["roles"], json!(["reader"]));
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(connect["jti"], claims["jti"]);
    let all = common::audit::all_text(audit.path());
    assert!(!all.contains(&token) && !all.contains(token.split('.').nth(2).unwrap()));
}
