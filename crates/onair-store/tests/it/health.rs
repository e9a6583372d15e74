//! The smoke test: a migrated store answers, and reports its pools.

use onair_store::Backend;

use crate::support::each_store;

#[tokio::test]
async fn migrated_store_pings_and_reports_its_pools() {
    each_store(|store| async move {
        // Migrating an up-to-date database is a no-op (every node migrates at start).
        store.migrate().await.unwrap();
        store.ping().await.unwrap();

        let pools = store.pool_stats();
        let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        match store.backend() {
            Backend::Sqlite => assert_eq!(names, ["writer", "reader"]),
            Backend::Postgres => assert_eq!(names, ["primary"], "no replicas configured"),
        }
        for pool in &pools {
            assert!(pool.size >= 1, "{pool:?}: ping opened a connection");
            assert!(pool.idle <= pool.size, "{pool:?}");
        }
    })
    .await;
}
