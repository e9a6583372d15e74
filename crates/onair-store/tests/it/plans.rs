//! Query plans at scale (PostgreSQL only): with 100 k users, ~1.1 M follows and 500 live
//! streams among 50 k ended ones, the live list and the followers/following pages must be
//! index scans, for the first page and for a deep cursor, with custom and generic plans.

use onair_store::testing::{SCALE_SEED, hot_queries, with_backend};
use onair_store::{Backend, Timestamp};
use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use uuid::Uuid;

/// Every (node type, relation) in a JSON plan.
fn scans(plan: &Value, out: &mut Vec<(String, String)>) {
    if let Some(node) = plan.get("Node Type").and_then(Value::as_str) {
        let relation = plan
            .get("Relation Name")
            .and_then(Value::as_str)
            .unwrap_or("");
        out.push((node.to_owned(), relation.to_owned()));
    }
    for child in plan
        .get("Plans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        scans(child, out);
    }
}

#[tokio::test]
async fn hot_queries_use_indexes_at_scale() {
    if !onair_store::testing::backends().contains(&"postgres") {
        eprintln!("skipped: ONAIR_TEST_POSTGRES_URL is not set");
        return;
    }
    with_backend("postgres", |_, config| async move {
        let store = onair_store::connect(&config).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        store.migrate().await.unwrap();
        store.close().await;

        let mut conn = PgConnection::connect(&config.url).await.unwrap();
        sqlx::raw_sql(SCALE_SEED).execute(&mut conn).await.unwrap();
        let popular: Uuid = sqlx::query_scalar("SELECT md5('0')::uuid")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let deep: (Timestamp, Uuid) = sqlx::query_as(
            "SELECT created_at, follower_id FROM follows WHERE following_id = $1
             ORDER BY created_at DESC, follower_id DESC OFFSET 50000 LIMIT 1",
        )
        .bind(popular)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let first = (
            Timestamp::from(chrono::Utc::now() + chrono::Duration::days(1)),
            Uuid::max(),
        );

        for mode in ["force_custom_plan", "force_generic_plan"] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET plan_cache_mode = {mode}")))
                .execute(&mut conn)
                .await
                .unwrap();
            for (name, sql) in hot_queries() {
                for (page, (at, id)) in [("first page", first), ("deep page", deep)] {
                    let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
                    let query = sqlx::query_scalar::<_, Value>(sqlx::AssertSqlSafe(explain));
                    let query = if name == "live streams" {
                        query.bind("live")
                    } else {
                        query.bind(popular)
                    };
                    let plan: Value = query
                        .bind(at)
                        .bind(id)
                        .bind(21_i64)
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                    let mut found = Vec::new();
                    scans(&plan[0]["Plan"], &mut found);
                    let seq: Vec<_> = found
                        .iter()
                        .filter(|(node, rel)| {
                            node == "Seq Scan" && (rel == "streams" || rel == "follows")
                        })
                        .collect();
                    assert!(
                        seq.is_empty(),
                        "{name}, {page}, {mode}: sequential scan in {plan:#}"
                    );
                    assert!(
                        found.iter().any(|(node, _)| node.starts_with("Index")),
                        "{name}, {page}, {mode}: no index scan in {plan:#}"
                    );
                }
            }
        }
    })
    .await;
}
