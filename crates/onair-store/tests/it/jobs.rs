//! The durable job queue: claims, leases, retries, dead letters.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;
use onair_core::Limit;
use onair_store::jobs::NewJob;
use onair_store::{Store, StoreError, Timestamp};

use crate::support::from_now;

onair_store::backend_tests!(crate::support::on_store =>
    a_claimed_job_is_held_then_completed,
    concurrent_claims_never_share_a_job,
    a_retried_job_waits_for_its_time_and_counts_attempts,
    an_expired_lease_runs_the_job_again_and_fences_the_old_worker,
    jobs_out_of_attempts_are_dead_letters_until_revived,
);

fn job(n: usize) -> NewJob {
    NewJob::now("test", &serde_json::json!({ "n": n }))
}

fn lease() -> Timestamp {
    from_now(Duration::seconds(30))
}

/// Number of jobs in `state`.
async fn count(store: &Arc<dyn Store>, state: &str) -> i64 {
    let stats = store.job_stats().await.unwrap();
    stats
        .iter()
        .filter(|s| s.state == state)
        .map(|s| s.count)
        .sum()
}

async fn a_claimed_job_is_held_then_completed(store: Arc<dyn Store>) {
    let queued = job(1);
    store.enqueue(queued.clone()).await.unwrap();
    assert_eq!(count(&store, "queued").await, 1);

    let claimed = store.claim_jobs(10, lease()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].id, claimed[0].kind.as_str(), claimed[0].attempts),
        (queued.id, "test", 1)
    );
    assert_eq!(claimed[0].payload, queued.payload);
    assert!(
        store.claim_jobs(10, lease()).await.unwrap().is_empty(),
        "a held job is not claimed twice"
    );
    assert_eq!(count(&store, "running").await, 1);

    store.complete_jobs(&[claimed[0].lease()]).await.unwrap();
    assert!(
        store.job_stats().await.unwrap().is_empty(),
        "finished jobs leave"
    );
}

async fn concurrent_claims_never_share_a_job(store: Arc<dyn Store>) {
    for n in 0..60 {
        store.enqueue(job(n)).await.unwrap();
    }
    let claimers: Vec<_> = (0..6)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.claim_jobs(15, lease()).await.unwrap() })
        })
        .collect();
    let mut seen = HashSet::new();
    for claimer in claimers {
        for job in claimer.await.unwrap() {
            assert!(seen.insert(job.id), "job {} claimed twice", job.id);
        }
    }
    assert_eq!(seen.len(), 60);
}

async fn a_retried_job_waits_for_its_time_and_counts_attempts(store: Arc<dyn Store>) {
    store.enqueue(job(1)).await.unwrap();
    let first = store.claim_jobs(1, lease()).await.unwrap().remove(0);
    store
        .retry_job(first.lease(), from_now(Duration::hours(1)), "boom")
        .await
        .unwrap();
    assert!(
        store.claim_jobs(1, lease()).await.unwrap().is_empty(),
        "not yet"
    );
    assert_eq!(count(&store, "queued").await, 1);

    store.enqueue(job(2)).await.unwrap();
    let other = store.claim_jobs(1, lease()).await.unwrap().remove(0);
    store
        .retry_job(other.lease(), Timestamp::now(), "again")
        .await
        .unwrap();
    let second = store.claim_jobs(1, lease()).await.unwrap().remove(0);
    assert_eq!((second.id, second.attempts), (other.id, 2));
}

async fn an_expired_lease_runs_the_job_again_and_fences_the_old_worker(store: Arc<dyn Store>) {
    store.enqueue(job(1)).await.unwrap();
    let lost = store
        .claim_jobs(1, from_now(Duration::seconds(-1)))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(store.release_expired_jobs(5).await.unwrap(), 1);
    let again = store.claim_jobs(1, lease()).await.unwrap().remove(0);
    assert_eq!((again.id, again.attempts), (lost.id, 2));

    // The first worker wakes up late: its outcome no longer applies, nor may it keep
    // the job; the new holder may.
    assert!(matches!(
        store.extend_lease(lost.lease(), lease()).await,
        Err(StoreError::LeaseLost)
    ));
    store.extend_lease(again.lease(), lease()).await.unwrap();
    store.bury_job(lost.lease(), "late").await.unwrap();
    assert_eq!(count(&store, "running").await, 1);
    assert_eq!(count(&store, "dead").await, 0);
}

async fn jobs_out_of_attempts_are_dead_letters_until_revived(store: Arc<dyn Store>) {
    store.enqueue(job(1)).await.unwrap();
    store.enqueue(job(2)).await.unwrap();
    let failing = store.claim_jobs(1, lease()).await.unwrap().remove(0);
    store
        .bury_job(failing.lease(), "bad payload")
        .await
        .unwrap();
    // The other one's worker vanished on its last attempt.
    let vanished = store
        .claim_jobs(1, from_now(Duration::seconds(-1)))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(store.release_expired_jobs(1).await.unwrap(), 1);

    let dead = store.dead_jobs(Limit::default(), None).await.unwrap();
    let ids: HashSet<_> = dead.items.iter().map(|j| j.id).collect();
    assert_eq!(ids, HashSet::from([failing.id, vanished.id]));
    let buried = dead.items.iter().find(|j| j.id == failing.id).unwrap();
    assert_eq!(buried.last_error.as_deref(), Some("bad payload"));
    assert!(store.claim_jobs(10, lease()).await.unwrap().is_empty());

    assert!(store.revive_job(failing.id).await.unwrap());
    assert!(
        !store.revive_job(failing.id).await.unwrap(),
        "no longer dead"
    );
    let revived = store.claim_jobs(10, lease()).await.unwrap();
    assert_eq!((revived[0].id, revived[0].attempts), (failing.id, 1));
}
