//! Query plans at scale (PostgreSQL only): with 100 k users, ~1.1 M follows and 500 live
//! streams among 50 k ended ones, the live list and the followers/following pages must
//! read their table through an index in the page's order (an index scan, never a
//! sequential or bitmap scan, and no sort), for the first page and for a deep cursor,
//! with custom and generic plans.

use std::collections::HashMap;

use onair_store::testing::{SCALE_SEED, TestBackend, hot_queries, with_backend};
use onair_store::{Backend, Timestamp};
use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use uuid::Uuid;

/// A node of a JSON plan: its type and the table it reads, if any (named directly, or
/// through the index it scans).
#[derive(Debug)]
struct Node {
    kind: String,
    table: Option<String>,
}

/// Every node of a JSON plan, parents first; `tables` maps index names to their tables.
fn nodes(plan: &Value, tables: &HashMap<String, String>, out: &mut Vec<Node>) {
    let field = |name| plan.get(name).and_then(Value::as_str);
    if let Some(kind) = field("Node Type") {
        let table = field("Relation Name")
            .map(str::to_owned)
            .or_else(|| field("Index Name").and_then(|index| tables.get(index).cloned()));
        out.push(Node {
            kind: kind.to_owned(),
            table,
        });
    }
    for child in plan
        .get("Plans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        nodes(child, tables, out);
    }
}

/// The tables whose hot lists must be read through an index.
const HOT_TABLES: [&str; 2] = ["streams", "follows"];

/// Where a query's plan goes wrong: a sort (the index did not give the page's order), a
/// scan of a hot table other than an index scan (sequential or bitmap: every matching
/// row is read before the first is returned), or no index scan of `table`, the one the
/// query lists.
fn plan_faults(found: &[Node], table: &str) -> Vec<String> {
    let mut faults = Vec::new();
    for node in found {
        let hot = node.table.as_deref().filter(|t| HOT_TABLES.contains(t));
        let index_scan = matches!(node.kind.as_str(), "Index Scan" | "Index Only Scan");
        if node.kind.contains("Sort") {
            faults.push(format!("a {} node", node.kind));
        } else if let Some(hot) = hot.filter(|_| !index_scan) {
            faults.push(format!("a {} on {hot}", node.kind));
        }
    }
    let indexed =
        |node: &&Node| node.table.as_deref() == Some(table) && node.kind.starts_with("Index");
    if !found.iter().any(|node| indexed(&node)) {
        faults.push(format!("no index scan of {table}"));
    }
    faults
}

#[tokio::test]
#[cfg_attr(not(onair_test_postgres), ignore = "set ONAIR_TEST_POSTGRES_URL")]
async fn hot_queries_use_indexes_at_scale() {
    with_backend(TestBackend::Postgres, |config| async move {
        let store = onair_store::connect(&config).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        store.migrate().await.unwrap();
        store.close().await;

        let mut conn = PgConnection::connect(&config.url).await.unwrap();
        sqlx::raw_sql(SCALE_SEED).execute(&mut conn).await.unwrap();
        let tables: HashMap<String, String> =
            sqlx::query_as("SELECT indexname, tablename FROM pg_indexes")
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .into_iter()
                .collect();
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
                    // The by-viewers list pages on a count: about the middle of the seed's.
                    let count = if page == "first page" {
                        i64::MAX
                    } else {
                        2_500
                    };
                    let query = match name {
                        "live streams by viewers" => query.bind("live").bind(count),
                        "live streams" => query.bind("live").bind(at),
                        _ => query.bind(popular).bind(at),
                    };
                    let plan: Value = query
                        .bind(id)
                        .bind(21_i64)
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                    let mut found = Vec::new();
                    nodes(&plan[0]["Plan"], &tables, &mut found);
                    let table = if name.starts_with("live streams") {
                        "streams"
                    } else {
                        "follows"
                    };
                    let faults = plan_faults(&found, table);
                    assert!(
                        faults.is_empty(),
                        "{name}, {page}, {mode}: {faults:?} in {plan:#}"
                    );
                }
            }
        }
    })
    .await;
}
