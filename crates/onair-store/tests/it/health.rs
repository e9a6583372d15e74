//! The smoke test: a migrated store answers, and reports its pools.

use std::sync::Arc;

use onair_store::{
    ArchiveStore, Backend, ChatStore, ClipStore, FollowStore, JobStore, NotificationStore,
    PushStore, SessionStore, Store, StreamKeyStore, StreamStore, UserStore, WebhookStore,
};

use crate::support::new_user;

onair_store::backend_tests!(crate::support::on_store =>
    migrated_store_pings_and_reports_its_pools,
    the_store_upcasts_to_each_domain_trait,
);

async fn migrated_store_pings_and_reports_its_pools(store: Arc<dyn Store>) {
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
}

/// Handlers hold only the domain traits they use, taken from the app's one store.
async fn the_store_upcasts_to_each_domain_trait(store: Arc<dyn Store>) {
    let users: Arc<dyn UserStore> = store.clone();
    let follows: Arc<dyn FollowStore> = store.clone();
    let hana = users.create_user(new_user("hana")).await.unwrap();
    let ivan = users.create_user(new_user("ivan")).await.unwrap();
    assert!(follows.follow(ivan.id, hana.id).await.unwrap());
    let hana = users.profile(hana.id).await.unwrap().expect("hana exists");
    assert_eq!(hana.follower_count, 1);
    let _: Arc<dyn SessionStore> = store.clone();
    let _: Arc<dyn StreamKeyStore> = store.clone();
    let _: Arc<dyn StreamStore> = store.clone();
    let _: Arc<dyn ArchiveStore> = store.clone();
    let _: Arc<dyn ClipStore> = store.clone();
    let _: Arc<dyn ChatStore> = store.clone();
    let _: Arc<dyn JobStore> = store.clone();
    let _: Arc<dyn NotificationStore> = store.clone();
    let _: Arc<dyn PushStore> = store.clone();
    let _: Arc<dyn WebhookStore> = store;
}
