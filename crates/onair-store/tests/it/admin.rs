//! Operators: suspensions, the admin flag, ending broadcasts and reviving jobs, each
//! with its audit entry in the same transaction; the audit log is append-only.

use std::future::Future;
use std::sync::Arc;

use chrono::Duration;
use onair_core::{Limit, StreamStatus};
use onair_store::jobs::NewJob;
use onair_store::testing::TestBackend;
use onair_store::{Actor, Conflict, RefreshRotation, Store, StoreError};
use uuid::Uuid;

use crate::support::{flat, from_now, go_live, new_user, new_user_with_email, pages, user};

onair_store::backend_tests!(crate::support::on_store =>
    a_suspension_revokes_sessions_ends_the_broadcast_and_refuses_the_account,
    unknown_targets_are_not_found_and_leave_no_audit_entry,
    admins_are_created_granted_and_revoked,
    an_admin_ends_an_active_broadcast_once,
    a_revived_job_is_audited_once,
    the_audit_log_pages_newest_first,
);

/// Cases that reach the database past the store.
mod raw {
    use super::the_audit_log_refuses_updates_and_deletes;

    onair_store::backend_tests!(crate::admin::on_database =>
        the_audit_log_refuses_updates_and_deletes);
}

/// A login's first refresh token.
async fn login(store: &Arc<dyn Store>, user_id: Uuid, token: &[u8]) {
    store
        .insert_refresh_token(user_id, token, from_now(Duration::days(7)))
        .await
        .unwrap();
}

async fn rotate(store: &Arc<dyn Store>, presented: &[u8]) -> RefreshRotation {
    store
        .rotate_refresh_token(
            presented,
            Uuid::now_v7().as_bytes(),
            from_now(Duration::days(7)),
            from_now(-Duration::days(30)),
        )
        .await
        .unwrap()
}

/// The audit log's actions, newest first.
async fn actions(store: &Arc<dyn Store>) -> Vec<String> {
    let page = store.audit_log(Limit::default(), None).await.unwrap();
    page.items.into_iter().map(|e| e.action).collect()
}

async fn a_suspension_revokes_sessions_ends_the_broadcast_and_refuses_the_account(
    store: Arc<dyn Store>,
) {
    let admin = user(&store, "boss").await;
    let caster = user(&store, "caster").await;
    login(&store, caster.id, b"phone").await;
    login(&store, caster.id, b"laptop").await;
    let live = go_live(&store, caster.id, "on air").await;
    let actor = Actor::Admin(admin.id);

    let done = store
        .suspend_user(actor, caster.id, Some("spam"))
        .await
        .unwrap();
    assert_eq!(done.revoked_sessions, 2);
    assert_eq!(done.ended_stream, Some(live.id));
    let ended = store.stream(live.id).await.unwrap().unwrap();
    assert_eq!(ended.status, StreamStatus::Ended);
    for token in [&b"phone"[..], b"laptop"] {
        assert_eq!(rotate(&store, token).await, RefreshRotation::Suspended);
    }
    // A login that slipped in meanwhile cannot refresh either.
    login(&store, caster.id, b"late").await;
    assert_eq!(rotate(&store, b"late").await, RefreshRotation::Suspended);
    let credentials = store.credentials("caster").await.unwrap().unwrap();
    assert!(credentials.suspended);
    assert!(matches!(
        store
            .start_stream(Uuid::now_v7(), caster.id, "again", None)
            .await,
        Err(StoreError::Suspended)
    ));
    let publish = store
        .attach_publisher(caster.id, Uuid::now_v7(), Uuid::now_v7(), None, None)
        .await;
    assert!(matches!(publish, Err(StoreError::Suspended)), "{publish:?}");
    assert!(matches!(
        store.suspend_user(actor, caster.id, None).await,
        Err(StoreError::Conflict(Conflict::AlreadySuspended))
    ));

    let status = store.account_status(caster.id).await.unwrap().unwrap();
    assert!(status.suspended_at.is_some() && !status.is_admin);
    let log = store.audit_log(Limit::default(), None).await.unwrap();
    let [entry] = &log.items[..] else {
        panic!("one entry: {:?}", log.items)
    };
    assert_eq!(
        (entry.actor_id, entry.actor.as_str(), entry.action.as_str()),
        (Some(admin.id), "api", "user.suspend")
    );
    assert_eq!(
        (entry.target_kind.as_str(), entry.target_id),
        ("user", caster.id)
    );
    let details: serde_json::Value = serde_json::from_str(&entry.details).unwrap();
    assert_eq!(details["reason"], "spam");
    assert_eq!(details["revoked_sessions"], 2);
    assert_eq!(details["ended_stream"], live.id.to_string());

    store.unsuspend_user(Actor::Cli, caster.id).await.unwrap();
    assert!(matches!(
        store.unsuspend_user(Actor::Cli, caster.id).await,
        Err(StoreError::Conflict(Conflict::NotSuspended))
    ));
    assert!(
        !store
            .credentials("caster")
            .await
            .unwrap()
            .unwrap()
            .suspended
    );
    login(&store, caster.id, b"back").await;
    assert!(matches!(
        rotate(&store, b"back").await,
        RefreshRotation::Rotated { .. }
    ));
    go_live(&store, caster.id, "back on air").await;
    assert_eq!(actions(&store).await, ["user.unsuspend", "user.suspend"]);
}

async fn unknown_targets_are_not_found_and_leave_no_audit_entry(store: Arc<dyn Store>) {
    let nobody = Uuid::now_v7();
    let cli = Actor::Cli;
    assert!(matches!(
        store.suspend_user(cli, nobody, None).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.unsuspend_user(cli, nobody).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.set_admin(cli, nobody, true).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.end_broadcast(cli, nobody, None).await,
        Err(StoreError::NotFound)
    ));
    assert!(!store.revive_dead_job(cli, nobody).await.unwrap());
    assert!(store.account_status(nobody).await.unwrap().is_none());
    assert!(actions(&store).await.is_empty());
}

async fn admins_are_created_granted_and_revoked(store: Arc<dyn Store>) {
    let root = new_user("root");
    let root_id = root.id;
    store.create_admin(Actor::Cli, root).await.unwrap();
    assert!(
        store
            .account_status(root_id)
            .await
            .unwrap()
            .unwrap()
            .is_admin
    );
    assert!(matches!(
        store
            .create_admin(Actor::Cli, new_user_with_email("root", "r@example.com"))
            .await,
        Err(StoreError::Conflict(Conflict::Username))
    ));

    let helper = user(&store, "helper").await;
    let by_root = Actor::Admin(root_id);
    assert!(store.set_admin(by_root, helper.id, true).await.unwrap());
    assert!(!store.set_admin(by_root, helper.id, true).await.unwrap());
    assert!(
        store
            .account_status(helper.id)
            .await
            .unwrap()
            .unwrap()
            .is_admin
    );
    assert!(store.set_admin(Actor::Cli, helper.id, false).await.unwrap());
    assert!(!store.set_admin(Actor::Cli, helper.id, false).await.unwrap());
    assert!(
        !store
            .account_status(helper.id)
            .await
            .unwrap()
            .unwrap()
            .is_admin
    );
    assert_eq!(
        actions(&store).await,
        ["user.revoke_admin", "user.grant_admin", "user.create_admin"]
    );
}

async fn an_admin_ends_an_active_broadcast_once(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let live = go_live(&store, caster.id, "on air").await;
    let owner = store
        .end_broadcast(Actor::Cli, live.id, Some("rules"))
        .await
        .unwrap();
    assert_eq!(owner, caster.id);
    let ended = store.stream(live.id).await.unwrap().unwrap();
    assert_eq!(ended.status, StreamStatus::Ended);
    assert!(matches!(
        store.end_broadcast(Actor::Cli, live.id, None).await,
        Err(StoreError::NotFound)
    ));
    let log = store.audit_log(Limit::default(), None).await.unwrap();
    assert_eq!(log.items.len(), 1);
    assert_eq!(
        (log.items[0].action.as_str(), log.items[0].target_id),
        ("stream.end", live.id)
    );
    assert_eq!(log.items[0].actor_id, None);
    // The owner may go live again: only that broadcast ended.
    go_live(&store, caster.id, "next").await;
}

async fn a_revived_job_is_audited_once(store: Arc<dyn Store>) {
    store
        .enqueue(NewJob::now("test", &serde_json::json!({})))
        .await
        .unwrap();
    let lease = from_now(Duration::seconds(30));
    let job = store.claim_jobs(1, lease).await.unwrap().remove(0);
    store.bury_job(job.lease(), "broken").await.unwrap();

    assert!(store.revive_dead_job(Actor::Cli, job.id).await.unwrap());
    assert!(!store.revive_dead_job(Actor::Cli, job.id).await.unwrap());
    assert!(
        store
            .dead_jobs(Limit::default(), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(actions(&store).await, ["job.revive"]);
}

async fn the_audit_log_pages_newest_first(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    for _ in 0..5 {
        store
            .suspend_user(Actor::Cli, caster.id, None)
            .await
            .unwrap();
        store.unsuspend_user(Actor::Cli, caster.id).await.unwrap();
    }
    let walked = pages(3, |limit, after| store.audit_log(limit, after)).await;
    let entries = flat(&walked, |e| (e.created_at, e.id, e.action.clone()));
    assert_eq!(entries.len(), 10);
    assert!(
        entries
            .windows(2)
            .all(|w| (w[0].0, w[0].1) > (w[1].0, w[1].1))
    );
    assert_eq!(entries[0].2, "user.unsuspend");
    assert_eq!(entries[9].2, "user.suspend");
}

/// Runs `test` with a migrated store and its database's URL, for statements the store
/// never makes.
async fn on_database<F, Fut>(backend: TestBackend, test: F)
where
    F: FnOnce(Arc<dyn Store>, String) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    onair_store::testing::with_backend(backend, move |config| async move {
        let store = onair_store::connect(&config).await.expect("connect");
        store.migrate().await.expect("migrate");
        test(Arc::clone(&store), config.url.clone()).await;
        store.close().await;
    })
    .await;
}

/// Runs `sql` on its own connection to the database at `url`.
async fn execute(url: &str, sql: &'static str) -> Result<(), sqlx::Error> {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        let outcome = sqlx::query(sql).execute(&pool).await.map(drop);
        pool.close().await;
        outcome
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        let outcome = sqlx::query(sql).execute(&pool).await.map(drop);
        pool.close().await;
        outcome
    }
}

async fn the_audit_log_refuses_updates_and_deletes(store: Arc<dyn Store>, url: String) {
    let caster = user(&store, "caster").await;
    store
        .suspend_user(Actor::Cli, caster.id, None)
        .await
        .unwrap();
    for sql in [
        "UPDATE admin_audit SET action = 'nothing'",
        "DELETE FROM admin_audit",
    ] {
        let refused = execute(&url, sql).await.expect_err(sql);
        assert!(refused.to_string().contains("append-only"), "{refused}");
    }
    let log = store.audit_log(Limit::default(), None).await.unwrap();
    assert_eq!(log.items.len(), 1);
    assert_eq!(log.items[0].action, "user.suspend");
}
