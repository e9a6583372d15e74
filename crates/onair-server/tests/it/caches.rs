//! Read caches (review M4, S3): cached profiles and live-list pages show every write that
//! changes them at once — on the node that wrote and, through Redis, on the others — and
//! hits and misses are counted in `/metrics`.

use onair_server::Config;
use onair_store::DbConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, User, eventually, redis_url};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    writes_show_through_the_caches_at_once,
    #[redis] a_write_on_one_node_shows_on_the_other_at_once,
);

async fn profile(node: &TestApp, user: &User) -> Value {
    let (status, body) = node.get(&format!("/api/users/{}", user.id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn live_ids(node: &TestApp) -> Vec<String> {
    let (status, body) = node.get("/api/streams").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn rename(node: &TestApp, user: &User, name: &str) {
    let response = node
        .client
        .patch(node.url("/api/users/me"))
        .bearer_auth(&user.access)
        .json(&json!({ "display_name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn go_live(node: &TestApp, user: &User) -> String {
    let (status, body) = node
        .post(
            "/api/streams/start",
            Some(&user.access),
            json!({"title": "cached"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn metrics(node: &TestApp) -> String {
    let response = node.client.get(node.url("/metrics")).send().await.unwrap();
    response.text().await.unwrap()
}

async fn writes_show_through_the_caches_at_once(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let (caster, fan) = (app.signup("caster").await, app.signup("fan").await);
    // Cached by the first reads (the second are hits)...
    assert_eq!(profile(&app, &caster).await["follower_count"], 0);
    for _ in 0..2 {
        assert_eq!(live_ids(&app).await, Vec::<String>::new());
    }
    let by_name = format!("/api/users/by-username/{}", caster.username);
    assert_eq!(app.get(&by_name).await.0, StatusCode::OK);

    // ...and each write that changes them is seen by the next read.
    rename(&app, &caster, "Caster").await;
    assert_eq!(profile(&app, &caster).await["display_name"], "Caster");
    assert_eq!(app.get(&by_name).await.1["display_name"], "Caster");
    let (status, _) = app
        .post(
            &format!("/api/users/{}/follow", caster.id),
            Some(&fan.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(profile(&app, &caster).await["follower_count"], 1);
    assert_eq!(profile(&app, &fan).await["following_count"], 1);

    let stream = go_live(&app, &caster).await;
    assert_eq!(live_ids(&app).await, [stream.as_str()]);
    assert_eq!(profile(&app, &caster).await["live_stream_id"], stream);
    let (status, _) = app
        .post("/api/streams/end", Some(&caster.access), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(live_ids(&app).await, Vec::<String>::new());
    assert_eq!(profile(&app, &caster).await["live_stream_id"], Value::Null);

    let metrics = metrics(&app).await;
    for cache in ["profiles", "live_pages"] {
        assert!(
            metrics.contains(&format!(
                "cache_hits_total{{cache=\"{cache}\",layer=\"local\"}}"
            )) && metrics.contains(&format!("cache_misses_total{{cache=\"{cache}\"}}")),
            "{metrics}"
        );
    }
}

/// Two nodes on one database and one Redis; the local layer would keep entries an hour,
/// so only the invalidation can make the second node see the first node's writes.
async fn a_write_on_one_node_shows_on_the_other_at_once(db: DbConfig) {
    let on_redis = |config: &mut Config| {
        config.redis.url = Some(redis_url());
        config.cache.local_ttl_secs = 3600;
    };
    let node_a = TestApp::spawn_configured(db, on_redis).await;
    let node_b = TestApp::spawn_configured(node_a.db.clone(), on_redis).await;
    // Each node subscribes to the invalidations in the background as it starts.
    let redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for cache in ["profiles", "live_pages"] {
        let topic = format!("{}cache:{cache}", node_a.config.cache.key_prefix);
        eventually("both nodes to listen for invalidations", || async {
            let (_, listening): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&topic)
                .query_async(&mut redis.clone())
                .await
                .unwrap();
            (listening == 2).then_some(())
        })
        .await;
    }
    let caster = node_a.signup("caster").await;
    assert_eq!(profile(&node_b, &caster).await["display_name"], Value::Null);
    assert_eq!(live_ids(&node_b).await, Vec::<String>::new());
    // A's first read finds B's entry in Redis.
    assert_eq!(profile(&node_a, &caster).await["display_name"], Value::Null);
    let shared_hit = "cache_hits_total{cache=\"profiles\",layer=\"shared\"}";
    let scraped = metrics(&node_a).await;
    assert!(scraped.contains(shared_hit));
    // The Redis each node uses, as redis_exporter would name it.
    for name in [
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
        "redis_evicted_keys_total",
    ] {
        assert!(scraped.contains(&format!("\n{name} ")), "{name}: {scraped}");
    }

    rename(&node_a, &caster, "Renamed").await;
    eventually("node B shows the new name", || async {
        (profile(&node_b, &caster).await["display_name"] == "Renamed").then_some(())
    })
    .await;
    let stream = go_live(&node_a, &caster).await;
    eventually("node B lists the new broadcast", || async {
        (live_ids(&node_b).await == [stream.clone()]).then_some(())
    })
    .await;
}
