//! Raw sockets against pgward: malformed, truncated and oversized input gets a
//! clear error and a clean close, and the gateway keeps serving.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::raw::{bind, execute, frame, parse, startup_packet, sync, Raw};
use common::*;

fn gateway() -> Gateway {
    Gateway::start(GatewayOptions {
        extra_server: "max_message_size = 65536\nlogin_timeout_secs = 2\n".into(),
        ..Default::default()
    })
}

fn still_serving(gw: &Gateway) {
    let mut r = gw.raw("shop");
    let reply = r.query("SELECT 41 + 1");
    let row = reply.iter().find(|m| m.tag == b'D').expect("a row");
    assert!(row.body.ends_with(b"42"), "{row:?}");
}

fn expect_fatal(r: &mut Raw, code: &str) {
    let m = r.recv_until(b'E');
    assert_eq!(m.code().as_deref(), Some(code), "{:?}", m.field(b'M'));
    assert_eq!(m.field(b'V').as_deref(), Some("FATAL"));
    assert!(
        r.closed(),
        "the connection must be closed after a FATAL error"
    );
}

#[test]
fn bad_startup_packets_are_refused() {
    let gw = gateway();
    // Length word over the startup limit.
    let mut r = Raw::connect(gw.port);
    r.send(&[0, 0x0f, 0x42, 0x40, 0, 3, 0, 0]);
    expect_fatal(&mut r, "08P01");
    // Length word below the minimum.
    let mut r = Raw::connect(gw.port);
    r.send(&[0, 0, 0, 2]);
    expect_fatal(&mut r, "08P01");
    // Protocol 2.0.
    let mut r = Raw::connect(gw.port);
    r.send(&[0, 0, 0, 9, 0, 2, 0, 0, 0]);
    expect_fatal(&mut r, "08P01");
    // Parameters without terminators.
    let mut r = Raw::connect(gw.port);
    let mut p = startup_packet(&[("user", "agent")]);
    p.truncate(p.len() - 2);
    let len = p.len() as u32;
    p[..4].copy_from_slice(&len.to_be_bytes());
    r.send(&p);
    expect_fatal(&mut r, "08P01");
    // No user.
    let mut r = Raw::connect(gw.port);
    r.send(&startup_packet(&[("database", "shop")]));
    expect_fatal(&mut r, "28000");
    // Bytes pipelined after SSLRequest.
    let mut r = Raw::connect(gw.port);
    let mut p = vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    p.extend_from_slice(&startup_packet(&[("user", "agent")]));
    r.send(&p);
    expect_fatal(&mut r, "08P01");
    // Terminate before any startup packet: closed quietly, as PostgreSQL does.
    let mut r = Raw::connect(gw.port);
    r.send(&[b'X', 0, 0, 0, 4]);
    let reply = r.recv();
    assert!(reply.is_none(), "no message for a Terminate: {reply:?}");
    still_serving(&gw);
}

#[test]
fn truncated_and_silent_logins_time_out() {
    let gw = gateway();
    let started = Instant::now();
    let mut silent = Raw::connect(gw.port);
    let mut truncated = Raw::connect(gw.port);
    truncated.send(&[0, 0, 0, 100, 0, 3, 0, 0, b'u']);
    // A client that disappears mid-packet is simply dropped.
    let mut gone = Raw::connect(gw.port);
    gone.send(&[0, 0, 0, 100]);
    drop(gone);
    assert!(silent.closed());
    assert!(truncated.closed());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(9),
        "login timeout not enforced: {waited:?}"
    );
    still_serving(&gw);
}

#[test]
fn ssl_and_gss_requests_are_declined_without_tls() {
    let gw = gateway();
    let mut r = Raw::connect(gw.port);
    r.send(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]); // GSSENCRequest
    let mut b = [0u8; 1];
    r.s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"N");
    r.send(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]); // SSLRequest
    r.s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"N");
    r.send(&startup_packet(&[("user", "agent"), ("database", "shop")]));
    assert_eq!(r.recv().unwrap().tag, b'R');
}

#[test]
fn protocol_3_2_is_negotiated_down() {
    let gw = gateway();
    let mut r = Raw::connect(gw.port);
    let mut p = startup_packet(&[("user", "agent"), ("_pq_.test_option", "1")]);
    p[4..8].copy_from_slice(&0x0003_0002u32.to_be_bytes());
    r.send(&p);
    let m = r.recv().unwrap();
    assert_eq!(m.tag, b'v', "NegotiateProtocolVersion expected");
    assert_eq!(&m.body[..4], &[0, 0, 0, 0], "minor version 0");
    assert_eq!(&m.body[4..8], &[0, 0, 0, 1], "one unrecognized option");
    assert!(m.body.ends_with(b"_pq_.test_option\0"));
    assert_eq!(r.recv().unwrap().tag, b'R');
}

#[test]
fn wrong_message_during_auth_is_a_protocol_error() {
    let gw = gateway();
    let mut r = Raw::connect(gw.port);
    r.send(&startup_packet(&[("user", "agent")]));
    assert_eq!(r.recv().unwrap().tag, b'R');
    r.send(&frame(b'Q', b"SELECT 1\0"));
    expect_fatal(&mut r, "08P01");
    still_serving(&gw);
}

#[test]
fn oversized_and_malformed_frames_close_the_session() {
    let gw = gateway();
    // Oversized: the header alone is enough to refuse; no body is sent.
    let mut r = gw.raw("shop");
    r.send(&[b'Q', 0, 0x10, 0, 0]);
    expect_fatal(&mut r, "08P01");
    // A length below four.
    let mut r = gw.raw("shop");
    r.send(&[b'Q', 0, 0, 0, 1]);
    expect_fatal(&mut r, "08P01");
    // Frames before the bad one still run.
    let mut r = gw.raw("shop");
    let mut bytes = frame(b'Q', b"SELECT 'before'\0");
    bytes.extend_from_slice(&[b'Q', 0xff, 0xff, 0xff, 0xff]);
    r.send(&bytes);
    let row = r.recv_until(b'D');
    assert!(row.body.ends_with(b"before"));
    expect_fatal(&mut r, "08P01");
    // A malformed body that only the server checks gets the server's error.
    let mut r = gw.raw("shop");
    r.send(&frame(b'Q', b"SELECT 1")); // no terminator
    let m = r.recv_until(b'E');
    assert_eq!(m.code().as_deref(), Some("08P01"));
    still_serving(&gw);
}

#[test]
fn cancel_with_unknown_key_is_ignored() {
    let gw = gateway();
    let mut r = Raw::connect(gw.port);
    r.send(&[0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1, 9, 9, 9, 9]);
    assert!(r.closed());
    still_serving(&gw);
}

#[test]
fn client_death_closes_the_upstream_session() {
    let gw = gateway();
    let app = format!("dying-client-{}", std::process::id());
    let mut r = Raw::connect(gw.port);
    r.send(&startup_packet(&[
        ("user", "agent"),
        ("database", "shop"),
        ("application_name", &app),
    ]));
    drop(r);
    let mut r = gw.raw("shop");
    let mut q = frame(b'Q', format!("SET application_name = '{app}'\0").as_bytes());
    q.extend_from_slice(&frame(b'Q', b"SELECT pg_sleep(0.2)\0"));
    r.send(&q);
    r.recv_until(b'Z');
    let count = || {
        cluster().sql(
            "shop",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'"),
        )
    };
    assert_eq!(count(), "1");
    // Half a frame, then the client vanishes.
    r.s.write_all(&[b'Q', 0, 0, 0]).unwrap();
    drop(r);
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() != "0" {
        assert!(
            Instant::now() < deadline,
            "upstream session outlived its client"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    still_serving(&gw);
}

#[test]
fn sigterm_drains_then_exits() {
    let mut gw = Gateway::start(GatewayOptions {
        extra_server: "shutdown_timeout_secs = 30\n".into(),
        ..Default::default()
    });
    let mut open = gw.raw("shop");
    gw.terminate();
    // New sessions are refused once the listeners close.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", gw.port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The open session keeps working.
    let reply = open.query("SELECT 'still here'");
    assert!(reply
        .iter()
        .any(|m| m.tag == b'D' && m.body.ends_with(b"still here")));
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "exited with a session open"
    );
    open.send(&frame(b'X', b""));
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            assert!(status.success(), "{}", gw.log_text());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not exit after the last session"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sessions_left_at_the_end_of_the_grace_period_are_told_why() {
    let mut gw = Gateway::start(GatewayOptions {
        extra_server: "shutdown_timeout_secs = 1\n".into(),
        ..Default::default()
    });
    let mut open = gw.raw("shop");
    gw.terminate();
    let m = open.recv_until(b'E');
    assert_eq!(m.code().as_deref(), Some("57P01"));
    assert_eq!(m.field(b'V').as_deref(), Some("FATAL"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "did not exit after the grace period"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn messages_after_a_failed_parse_are_skipped_until_sync_without_a_hang() {
    // psycopg's executemany: Parse of a statement the server rejects, then
    // (after its error arrived) Binds and Executes of it, then one Sync.
    // The server skips everything up to the Sync; so must pgward's reply
    // queue, or it waits for replies that never come.
    let gw = gateway();
    let mut r = gw.raw("shop");
    let mut batch = parse("s1", "INSERT INTO public.no_such_table VALUES (1)");
    batch.extend(frame(b'H', &[]));
    r.send(&batch);
    let err = r.recv_until(b'E');
    assert_eq!(err.code().as_deref(), Some("42P01"));
    let mut batch = Vec::new();
    for _ in 0..2 {
        batch.extend(bind("", "s1"));
        batch.extend(execute("", 0));
    }
    batch.extend(sync());
    r.send(&batch);
    // Nothing for the skipped messages; ReadyForQuery for the Sync.
    let m = r.recv().expect("a reply to the Sync");
    assert_eq!(m.tag, b'Z', "{m:?}");
    // The session goes on.
    let reply = r.query("SELECT 1");
    assert!(reply.iter().any(|m| m.tag == b'D'), "{reply:?}");
}

#[test]
fn the_backend_pid_a_client_sees_is_the_servers() {
    // Drivers compare it with NOTIFY senders and pass it to
    // pg_terminate_backend: it must be the server's own.
    let gw = gateway();
    let mut r = gw.raw("shop");
    let pid = r.backend_pid.expect("BackendKeyData");
    let reply = r.query("SELECT pg_backend_pid()");
    let row = reply.iter().find(|m| m.tag == b'D').expect("a row");
    let server_pid = String::from_utf8_lossy(&row.body[6..]).into_owned();
    assert_eq!(pid.to_string(), server_pid);
}
