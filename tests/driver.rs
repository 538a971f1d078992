//! tokio-postgres through pgward: prepared statements, pipelining, binary
//! results, COPY, LISTEN/NOTIFY and query cancellation.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt, TryStreamExt};

#[tokio::test]
async fn prepared_statements_with_binary_results() {
    let gw = Gateway::start(GatewayOptions::default());
    let client = gw.connect("shop").await;
    let stmt = client
        .prepare("SELECT id, email, created_at FROM customers WHERE id = $1")
        .await
        .unwrap();
    let direct: String = cluster().sql("shop", "SELECT email FROM customers WHERE id = 2");
    let row = client.query_one(&stmt, &[&2i32]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    assert_eq!(row.get::<_, String>(1), direct);
    // Reuse the named statement many times, with binary int/text/timestamp.
    for id in 1..=5i32 {
        let rows = client.query(&stmt, &[&id]).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i32>(0), id);
    }
    // A bytea round trip is binary both ways.
    let blob: Vec<u8> = (0..=255u8).collect();
    let row = client
        .query_one("SELECT $1::bytea", &[&blob])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<u8>>(0), blob);
    // An error in the extended protocol leaves the session usable.
    let err = client
        .query_one("SELECT 1/$1::int", &[&0i32])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO)
    );
    assert_eq!(
        client
            .query_one("SELECT 7::int", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        7
    );
}

#[tokio::test]
async fn pipelined_queries_return_in_order() {
    let gw = Gateway::start(GatewayOptions::default());
    let client = gw.connect("shop").await;
    let stmt = client.prepare("SELECT $1::int * 10").await.unwrap();
    let futures = (0..200i32).map(|i| {
        let client = &client;
        let stmt = &stmt;
        async move {
            client
                .query_one(stmt, &[&i])
                .await
                .unwrap()
                .get::<_, i32>(0)
        }
    });
    let results = futures_util::future::join_all(futures).await;
    assert_eq!(results, (0..200).map(|i| i * 10).collect::<Vec<_>>());
}

#[tokio::test]
async fn copy_in_and_out() {
    let gw = Gateway::start(GatewayOptions::default());
    let client = gw.connect("shop").await;
    client
        .batch_execute("CREATE TEMP TABLE t (id int, payload text)")
        .await
        .unwrap();
    let sink = client.copy_in("COPY t FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    // Large enough to cross many buffer boundaries.
    let mut expected = String::new();
    for chunk in 0..50 {
        let mut data = String::new();
        for i in 0..1000 {
            let n = chunk * 1000 + i;
            data += &format!("{n}\tpayload-{n}-{}\n", "x".repeat(n % 50));
        }
        expected += &data;
        sink.send(bytes::Bytes::from(data)).await.unwrap();
    }
    assert_eq!(sink.finish().await.unwrap(), 50_000);
    let stream = client
        .copy_out("COPY (SELECT * FROM t ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    let out: Vec<u8> = chunks.concat();
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[tokio::test]
async fn listen_notify_reaches_the_listener() {
    let gw = Gateway::start(GatewayOptions::default());
    let (listener, mut conn) = gw
        .pg_config("shop")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    tokio::spawn(async move {
        futures_util::pin_mut!(stream);
        while let Some(Ok(msg)) = stream.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = msg {
                let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    listener
        .batch_execute("LISTEN pgward_events")
        .await
        .unwrap();
    let sender = gw.connect("shop").await;
    sender
        .batch_execute("NOTIFY pgward_events, 'hello'; SELECT pg_notify('pgward_events', 'world')")
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .expect("notification in time")
            .unwrap();
        got.push(n);
    }
    assert_eq!(
        got,
        vec![
            ("pgward_events".to_string(), "hello".to_string()),
            ("pgward_events".to_string(), "world".to_string())
        ]
    );
}

#[tokio::test]
async fn cancel_stops_a_running_query() {
    let gw = Gateway::start(GatewayOptions::default());
    let client = gw.connect("shop").await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    });
    let started = std::time::Instant::now();
    let err = client
        .batch_execute("SELECT pg_sleep(30)")
        .await
        .unwrap_err();
    canceller.await.unwrap();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // The session goes on after the cancel.
    assert_eq!(
        client
            .query_one("SELECT 1::int", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
}

#[tokio::test]
async fn terminated_backend_gives_the_client_an_error() {
    let gw = Gateway::start(GatewayOptions::default());
    let client = gw.connect("shop").await;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    cluster().sql("shop", &format!("SELECT pg_terminate_backend({pid})"));
    let err = client.query_one("SELECT 1", &[]).await.unwrap_err();
    assert!(err.is_closed() || err.code().is_some(), "{err}");
    assert!(client.is_closed() || client.query_one("SELECT 1", &[]).await.is_err());
}

#[tokio::test]
async fn settings_named_by_bind_parameters_are_judged_with_their_values() {
    // tokio-postgres prepares, then binds text parameters in binary format.
    let gw = Gateway::with_roles(
        "reader",
        "[roles.reader]\noperations = [\"select\"]\nread = [\"public.*\"]\n",
    );
    let client = gw.connect("shop").await;
    let direct = cluster().sql("shop", "SHOW work_mem");
    let row = client
        .query_one("SELECT current_setting($1)", &[&"work_mem"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), direct);
    // The same prepared statement with a secret setting's name is refused
    // at Bind, and the session goes on.
    let stmt = client.prepare("SELECT current_setting($1)").await.unwrap();
    let err = client
        .query_one(&stmt, &[&"data_directory"])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{err:?}"
    );
    let ok = client.query_one(&stmt, &[&"TimeZone"]).await.unwrap();
    assert!(!ok.get::<_, String>(0).is_empty());
    // set_config: a harmless setting by parameters; an identity change never.
    let row = client
        .query_one(
            "SELECT set_config($1, $2, false)",
            &[&"application_name", &"bound"],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "bound");
    let err = client
        .query_one("SELECT set_config($1, $2, false)", &[&"role", &"postgres"])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    let who: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(who, "postgres");
    // A parameter declared with a type that changes text on the way is refused.
    let err = client
        .prepare_typed(
            "SELECT current_setting($1)",
            &[tokio_postgres::types::Type::BPCHAR],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
}
