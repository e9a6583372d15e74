//! A node keeps serving what it can while a dependency is away, and recovers by itself:
//! Redis (its own server, stopped and started again on the same port) and PostgreSQL
//! (reached through a proxy the test cuts and restores).

use std::ops::Range;
use std::time::Duration;

use onair_infra::testing::RedisServer;
use onair_store::DbConfig;
use onair_store::testing::{TestBackend, with_backend};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::chat::{Socket, heard, member_socket, next, open, room_of, say};
use crate::support::{TestApp, assert_error, eventually, header};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    #[redis] the_node_serves_without_redis_and_recovers_when_it_returns,
);

#[tokio::test]
#[cfg_attr(not(onair_test_postgres), ignore = "set ONAIR_TEST_POSTGRES_URL")]
async fn a_lost_postgres_is_503_then_reconnected() {
    with_backend(TestBackend::Postgres, postgres_lost_and_found).await;
}

async fn readiness(app: &TestApp) -> (StatusCode, Value) {
    app.get("/readyz").await
}

/// Whether `socket` gets the message `text` within a second.
async fn hears_soon(socket: &mut Socket, text: &str) -> bool {
    tokio::time::timeout(Duration::from_secs(1), heard(socket, text))
        .await
        .is_ok()
}

async fn the_node_serves_without_redis_and_recovers_when_it_returns(db: DbConfig) {
    // A Redis of its own, stopped mid-test (never the shared one).
    let mut redis = RedisServer::start().await;
    let on_redis = |config: &mut onair_server::Config| {
        config.redis.url = Some(redis.url().to_owned());
        config.chat.rate_burst = 1_000;
    };
    let node = TestApp::spawn_configured(db, on_redis).await;
    let other_node = TestApp::spawn_configured(node.db.clone(), on_redis).await;
    let ready = readiness(&node).await;
    assert_eq!(ready.0, StatusCode::OK);
    assert_eq!(
        ready.1,
        json!({"status": "ready", "checks": {"database": "up", "redis": "up"}})
    );
    let owner = node.signup("degraded_owner").await;
    let fan = node.signup("degraded_fan").await;
    let mut talker = member_socket(&node, &owner, &owner).await;
    let mut listener = member_socket(&node, &owner, &fan).await;
    let mut elsewhere = member_socket(&other_node, &owner, &fan).await;
    say(&mut talker, "while Redis is up").await;
    heard(&mut listener, "while Redis is up").await;
    heard(&mut elsewhere, "while Redis is up").await;

    redis.stop().await;
    let degraded = eventually("readiness to name Redis", || async {
        let (status, body) = readiness(&node).await;
        (body["status"] == "degraded").then_some((status, body))
    })
    .await;
    assert_eq!(degraded.0, StatusCode::OK);
    assert_eq!(
        degraded.1["checks"],
        json!({"database": "up", "redis": "down"})
    );

    // The API reads and writes the database as before.
    let (status, _) = node.get("/api/streams").await;
    assert_eq!(status, StatusCode::OK);
    let latecomer = node.signup("degraded_latecomer").await;
    let (status, me) = node.get_as("/api/users/me", &latecomer.access).await;
    assert_eq!(
        (status, &me["username"]),
        (StatusCode::OK, &json!(latecomer.username))
    );

    // Chat goes on between the node's sockets, a new one included, with what the node
    // kept meanwhile as history.
    say(&mut talker, "while Redis is away").await;
    heard(&mut talker, "while Redis is away").await;
    heard(&mut listener, "while Redis is away").await;
    let mut joined = open(&node, &room_of(&owner)).await;
    assert_eq!(next(&mut joined).await["history"], 1);
    assert_eq!(next(&mut joined).await["text"], "while Redis is away");
    say(&mut listener, "still talking").await;
    heard(&mut joined, "still talking").await;
    heard(&mut talker, "still talking").await;

    redis.restart().await;
    eventually("readiness to be whole again", || async {
        let (status, body) = readiness(&node).await;
        (status == StatusCode::OK && body["status"] == "ready").then_some(())
    })
    .await;
    // Fan-out across nodes resumes once both have found Redis again.
    let mut n = 0;
    loop {
        n += 1;
        let text = format!("Redis is back {n}");
        say(&mut talker, &text).await;
        if hears_soon(&mut elsewhere, &text).await {
            break;
        }
        assert!(
            n < 60,
            "no message reached the other node after Redis returned"
        );
    }
    say(&mut talker, "all together again").await;
    heard(&mut listener, "all together again").await;
    heard(&mut joined, "all together again").await;
    heard(&mut elsewhere, "all together again").await;
    other_node.shutdown().await;
    node.shutdown().await;
}

/// A TCP proxy to PostgreSQL that the test cuts (every connection dropped, new ones
/// closed at once, as a database that went away) and restores.
struct Proxy {
    port: u16,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, _) = watch::channel(true);
        let state = up.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = state.subscribe();
                if !*cut.borrow_and_update() {
                    continue; // dropped: closed at once
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|up| !up) => {}
                    }
                });
            }
        });
        Self { port, up }
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

/// Where `url`'s `host:port` is.
fn host_port(url: &str) -> Range<usize> {
    let start = url
        .find('@')
        .map(|at| at + 1)
        .or_else(|| url.find("://").map(|scheme| scheme + 3))
        .expect("a URL");
    start..start + url[start..].find('/').expect("a database name")
}

async fn postgres_lost_and_found(db: DbConfig) {
    let server = host_port(&db.url);
    let proxy = Proxy::start(db.url[server.clone()].to_owned()).await;
    let mut proxied = db.url.clone();
    proxied.replace_range(server, &format!("127.0.0.1:{}", proxy.port));
    let app = TestApp::spawn(DbConfig { url: proxied, ..db }).await;
    let user = app.signup("pg_comes_and_goes").await;
    assert_eq!(app.get("/api/streams").await.0, StatusCode::OK);

    proxy.cut();
    // Not the live list's first page: the cache answers that without the database.
    for path in ["/api/streams?status=ended", "/readyz"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(header(response.headers(), "retry-after"), "1", "{path}");
        assert_error(
            &crate::support::read(response).await,
            503,
            "service_unavailable",
        );
    }
    let (status, body) = app.get_as("/api/users/me", &user.access).await;
    assert_error(&(status, body), 503, "service_unavailable");
    let write = app
        .client
        .patch(app.url("/api/users/me"))
        .bearer_auth(&user.access)
        .json(&json!({"display_name": "Offline"}))
        .send()
        .await
        .unwrap();
    assert_error(
        &crate::support::read(write).await,
        503,
        "service_unavailable",
    );

    // No restart: the pool connects again by itself.
    proxy.restore();
    eventually("the database to answer again", || async {
        (app.get("/api/streams?status=ended").await.0 == StatusCode::OK).then_some(())
    })
    .await;
    let (status, me) = app.get_as("/api/users/me", &user.access).await;
    assert_eq!(
        (status, &me["username"]),
        (StatusCode::OK, &json!(user.username))
    );
    let (status, ready) = readiness(&app).await;
    assert_eq!(
        (status, &ready["status"]),
        (StatusCode::OK, &json!("ready"))
    );
    app.shutdown().await;
}
