//! Read replicas for real (review S6): each test clones the test PostgreSQL server into a
//! streaming replica of its own (`StreamingReplica`), runs a server reading from it, and
//! drives it with `pg_wal_replay_pause()` and by stopping it. PostgreSQL only.

use std::future::Future;
use std::time::{Duration, Instant};

use onair_server::Config;
use onair_store::DbConfig;
use onair_store::testing::{StreamingReplica, with_postgres};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{TestApp, User, redis_url};

/// Runs `test` with a new database on the test server and a replica of that server;
/// both are removed afterwards, whether the test passed or not.
async fn with_replica<Fut>(test: fn(String, DbConfig, StreamingReplica) -> Fut)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin =
        std::env::var("ONAIR_TEST_POSTGRES_URL").expect("ONAIR_TEST_POSTGRES_URL must be set");
    let outcome = with_postgres(&admin.clone(), |db| {
        tokio::spawn(async move {
            let replica = StreamingReplica::start(&admin).await;
            test(admin, db, replica).await;
        })
    })
    .await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// A server on `db` reading from `replica`, checking it every 100 ms.
async fn spawn_with(
    db: &DbConfig,
    replica: &StreamingReplica,
    change: impl FnOnce(&mut Config),
) -> TestApp {
    let replica_url = replica.url_of(&db.url);
    TestApp::spawn_configured(db.clone(), move |config| {
        config.database.replica_urls = vec![replica_url];
        config.database.replica_check_interval_ms = 100;
        change(config);
    })
    .await
}

/// The replica's line of `metric` in `/metrics` (each test's replica has its own port).
async fn replica_gauge(app: &TestApp, replica: &StreamingReplica, metric: &str) -> Option<f64> {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let label = format!("{metric}{{replica=\"{}\"}} ", replica.address());
    text.lines()
        .find_map(|line| line.strip_prefix(&label))
        .map(|value| value.trim().parse().expect("a number"))
}

/// Waits until the replica is in rotation (`true`) or out of it.
async fn wait_rotation(app: &TestApp, replica: &StreamingReplica, in_rotation: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let want = if in_rotation { 1.0 } else { 0.0 };
    while replica_gauge(app, replica, "db_replica_in_rotation").await != Some(want) {
        assert!(
            Instant::now() < deadline,
            "the replica never went {}",
            if in_rotation {
                "in rotation"
            } else {
                "out of rotation"
            }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The usernames in `star`'s followers list, read anonymously or as `reader`.
async fn followers(app: &TestApp, star: &User, reader: Option<&User>) -> Vec<String> {
    let path = format!("/api/users/{}/followers", star.id);
    let (status, body) = app
        .request(Method::GET, &path, reader.map(|u| u.access.as_str()), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|f: &Value| f["user"]["username"].as_str().unwrap().to_owned())
        .collect()
}

async fn follow(app: &TestApp, fan: &User, star: &User) {
    let path = format!("/api/users/{}/follow", star.id);
    let (status, body) = app
        .request(Method::POST, &path, Some(&fan.access), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
#[cfg_attr(not(onair_test_postgres), ignore = "set ONAIR_TEST_POSTGRES_URL")]
async fn public_reads_come_from_the_replica_and_writers_read_their_own() {
    with_replica(|admin, db, replica| async move {
        // A lag limit far above the test's length: the paused replica stays in rotation.
        let app = spawn_with(&db, &replica, |c| c.database.replica_max_lag_ms = 600_000).await;
        let star = app.signup("star").await;
        let fan = app.signup("fan").await;
        replica.wait_caught_up(&admin).await;
        wait_rotation(&app, &replica, true).await;

        replica.pause().await;
        follow(&app, &fan, &star).await;
        // The follow is on the primary only: anonymous reads, and a user who has not
        // written, are served by the replica.
        assert!(followers(&app, &star, None).await.is_empty());
        assert!(followers(&app, &star, Some(&star)).await.is_empty());
        // The writer reads it at once, from the primary.
        assert_eq!(followers(&app, &star, Some(&fan)).await, ["fan"]);
        let lag = replica_gauge(&app, &replica, "db_replica_lag_seconds").await;
        assert!(lag.is_some_and(|lag| lag >= 0.0), "lag exported: {lag:?}");

        replica.resume().await;
        replica.wait_caught_up(&admin).await;
        assert_eq!(followers(&app, &star, None).await, ["fan"]);
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
#[cfg_attr(not(onair_test_postgres), ignore = "set ONAIR_TEST_POSTGRES_URL")]
async fn a_lagging_or_stopped_replica_leaves_the_rotation() {
    with_replica(|admin, db, mut replica| async move {
        let app = spawn_with(&db, &replica, |c| c.database.replica_max_lag_ms = 1_000).await;
        let star = app.signup("star").await;
        let fan = app.signup("fan").await;
        replica.wait_caught_up(&admin).await;
        wait_rotation(&app, &replica, true).await;

        // Replay paused: once the unreplayed follow is over a second old, the replica
        // leaves, and public reads see the primary's fresh data.
        replica.pause().await;
        follow(&app, &fan, &star).await;
        wait_rotation(&app, &replica, false).await;
        let lag = replica_gauge(&app, &replica, "db_replica_lag_seconds").await;
        assert!(
            lag.is_some_and(|lag| lag > 1.0),
            "lag over the limit: {lag:?}"
        );
        assert_eq!(followers(&app, &star, None).await, ["fan"]);

        replica.resume().await;
        wait_rotation(&app, &replica, true).await;
        let lag = replica_gauge(&app, &replica, "db_replica_lag_seconds").await;
        assert!(lag.is_some_and(|lag| lag <= 1.0), "caught up: {lag:?}");
        assert_eq!(followers(&app, &star, None).await, ["fan"]);

        // Stopped: reads keep succeeding (the health check, or the first read that
        // cannot reach it, takes it out) and it leaves the rotation.
        replica.stop();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            assert_eq!(followers(&app, &star, None).await, ["fan"]);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        wait_rotation(&app, &replica, false).await;
        let (status, body) = app.get("/readyz").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "a replica alone never makes a node unready: {body}"
        );
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
#[cfg_attr(
    not(all(onair_test_postgres, onair_test_redis)),
    ignore = "set ONAIR_TEST_POSTGRES_URL and ONAIR_TEST_REDIS_URL"
)]
async fn a_write_on_one_node_is_read_on_another() {
    with_replica(|admin, db, replica| async move {
        let shared = |c: &mut Config| {
            c.database.replica_max_lag_ms = 600_000;
            c.redis.url = Some(redis_url());
        };
        let a = spawn_with(&db, &replica, shared).await;
        let b = spawn_with(&db, &replica, shared).await;
        let star = a.signup("star").await;
        let fan = a.signup("fan").await;
        replica.wait_caught_up(&admin).await;
        wait_rotation(&b, &replica, true).await;

        replica.pause().await;
        follow(&a, &fan, &star).await;
        // Node B learns through Redis that fan just wrote.
        assert_eq!(followers(&b, &star, Some(&fan)).await, ["fan"]);
        assert!(followers(&b, &star, None).await.is_empty());
        replica.resume().await;
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}
