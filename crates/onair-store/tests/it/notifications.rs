//! Go-live fan-out, the inbox, mutes, push subscriptions and webhooks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use onair_core::Limit;
use onair_store::jobs::{ClaimedJob, GoLiveJob, PushBatchJob, WebhookJob, kinds};
use onair_store::{
    NewPushSubscription, NewWebhook, Store, StoreError, Timestamp, UserProfile, WebhookEvent,
};
use uuid::Uuid;

use crate::support::{from_now, go_live, user, users};

onair_store::backend_tests!(crate::support::on_store =>
    go_live_notifies_every_follower_once_except_the_muted,
    a_fan_out_resumes_after_a_lost_worker_without_duplicates,
    going_live_again_within_the_cooldown_does_not_renotify,
    a_large_audience_is_split_into_parts_that_run_as_jobs_of_their_own,
    the_inbox_pages_newest_first_and_marks_read,
    push_batches_are_enqueued_for_subscribed_followers_who_want_push,
    stream_events_enqueue_webhook_deliveries_until_disabled,
    concurrent_webhook_registrations_never_pass_the_cap,
);

const COOLDOWN: StdDuration = StdDuration::from_secs(600);

fn lease() -> Timestamp {
    from_now(Duration::seconds(30))
}

/// Claims every ready job and returns those of `kind` (completing the others).
async fn claim(store: &Arc<dyn Store>, kind: &str) -> Vec<ClaimedJob> {
    let claimed = store.claim_jobs(1000, lease()).await.unwrap();
    let (wanted, other): (Vec<_>, Vec<_>) = claimed.into_iter().partition(|j| j.kind == kind);
    let leases: Vec<_> = other.iter().map(ClaimedJob::lease).collect();
    store.complete_jobs(&leases).await.unwrap();
    wanted
}

/// A creator "star" followed by `n` users "fan0"….
async fn audience(store: &Arc<dyn Store>, n: usize) -> (UserProfile, Vec<UserProfile>) {
    let star = user(store, "star").await;
    let fans = users(store, "fan", n).await;
    for fan in &fans {
        store.follow(fan.id, star.id).await.unwrap();
    }
    (star, fans)
}

/// Plans a claimed go-live job (`None`: cooling down) into parts of `part` followers.
async fn plan(
    store: &Arc<dyn Store>,
    job: &ClaimedJob,
    cooldown: StdDuration,
    part: u32,
) -> Option<GoLiveJob> {
    let state: GoLiveJob = serde_json::from_str(&job.payload).unwrap();
    store
        .plan_go_live(job.lease(), &state, cooldown, part, lease())
        .await
        .unwrap()
}

/// Runs a planned part to its end, `batch` followers at a time; returns the recipients
/// and the number of batches.
async fn run_part(
    store: &Arc<dyn Store>,
    job: &ClaimedJob,
    mut state: GoLiveJob,
    batch: u32,
) -> (Vec<Uuid>, usize) {
    let (mut recipients, mut batches) = (Vec::new(), 0);
    loop {
        let done = store
            .fan_out_go_live(job.lease(), &state, batch, lease())
            .await
            .unwrap();
        recipients.extend(done.recipients);
        batches += 1;
        match done.next {
            Some(next) => state = next,
            None => return (recipients, batches),
        }
    }
}

/// Plans and runs a whole go-live job as one part.
async fn fan_out(store: &Arc<dyn Store>, job: &ClaimedJob, batch: u32) -> (Vec<Uuid>, usize) {
    match plan(store, job, COOLDOWN, 1000).await {
        Some(first) => run_part(store, job, first, batch).await,
        None => (Vec::new(), 0),
    }
}

async fn go_live_notifies_every_follower_once_except_the_muted(store: Arc<dyn Store>) {
    let (star, fans) = audience(&store, 7).await;
    assert!(store.set_muted(fans[0].id, star.id, true).await.unwrap());
    assert!(store.is_muted(fans[0].id, star.id).await.unwrap());

    let stream = go_live(&store, star.id, "Hello").await;
    let jobs = claim(&store, kinds::GO_LIVE).await;
    assert_eq!(jobs.len(), 1, "the go-live enqueued its fan-out");
    let (recipients, batches) = fan_out(&store, &jobs[0], 3).await;
    let expected: HashSet<_> = fans[1..].iter().map(|f| f.id).collect();
    assert_eq!(recipients.len(), 6);
    assert_eq!(recipients.iter().copied().collect::<HashSet<_>>(), expected);
    assert_eq!(
        batches, 3,
        "7 followers by 3, the last batch has the muted one"
    );

    // Running the whole job again (a retry from scratch) writes nothing new.
    let (again, _) = fan_out(&store, &jobs[0], 3).await;
    assert!(again.is_empty());

    let inbox = store
        .notifications(fans[1].id, Limit::default(), None)
        .await
        .unwrap();
    assert_eq!(inbox.items.len(), 1);
    assert_eq!(inbox.items[0].stream_id, stream.id);
    assert_eq!(inbox.items[0].creator.username, "star");
    assert_eq!(inbox.items[0].title, "Hello");
    assert!(
        store
            .notifications(fans[0].id, Limit::default(), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn a_fan_out_resumes_after_a_lost_worker_without_duplicates(store: Arc<dyn Store>) {
    let (star, fans) = audience(&store, 5).await;
    go_live(&store, star.id, "Resumed").await;
    let job = claim(&store, kinds::GO_LIVE).await.remove(0);
    let first = plan(&store, &job, COOLDOWN, 1000).await.unwrap();
    let done = store
        .fan_out_go_live(job.lease(), &first, 2, from_now(Duration::seconds(-1)))
        .await
        .unwrap();
    let (recipients, next) = (done.recipients, done.next);
    assert_eq!(recipients.len(), 2);
    assert!(next.is_some());

    // The worker dies; its lease runs out and another worker takes the job, with
    // the progress the first one recorded.
    assert_eq!(store.release_expired_jobs(5).await.unwrap(), 1);
    let retry = claim(&store, kinds::GO_LIVE).await.remove(0);
    assert_eq!(retry.attempts, 2);
    let resumed: GoLiveJob = serde_json::from_str(&retry.payload).unwrap();
    assert_eq!(Some(resumed.clone()), next);

    // The old worker's next batch is refused and writes nothing.
    assert!(matches!(
        store
            .fan_out_go_live(job.lease(), &resumed, 2, lease())
            .await,
        Err(StoreError::LeaseLost)
    ));
    let (rest, _) = run_part(&store, &retry, resumed, 2).await;
    assert_eq!(rest.len(), 3);
    let mut everyone: Vec<_> = recipients.into_iter().chain(rest).collect();
    everyone.sort();
    everyone.dedup();
    assert_eq!(everyone.len(), 5);
    for fan in &fans {
        assert_eq!(store.unread_notifications(fan.id).await.unwrap(), 1);
    }
}

async fn going_live_again_within_the_cooldown_does_not_renotify(store: Arc<dyn Store>) {
    let star = user(&store, "star").await;
    let fan = user(&store, "fan").await;
    store.follow(fan.id, star.id).await.unwrap();
    go_live(&store, star.id, "One").await;
    let first = claim(&store, kinds::GO_LIVE).await.remove(0);
    assert_eq!(fan_out(&store, &first, 10).await.0, vec![fan.id]);
    store.end_stream(star.id).await.unwrap();

    go_live(&store, star.id, "Two").await;
    let second = claim(&store, kinds::GO_LIVE).await.remove(0);
    assert_eq!(plan(&store, &second, COOLDOWN, 1000).await, None);
    // With no cooldown the same broadcast would notify.
    let first = plan(&store, &second, StdDuration::ZERO, 1000)
        .await
        .unwrap();
    assert_eq!(run_part(&store, &second, first, 10).await.0, vec![fan.id]);
    assert_eq!(store.unread_notifications(fan.id).await.unwrap(), 2);
}

async fn a_large_audience_is_split_into_parts_that_run_as_jobs_of_their_own(store: Arc<dyn Store>) {
    let (star, fans) = audience(&store, 7).await;
    go_live(&store, star.id, "Parts").await;
    let root = claim(&store, kinds::GO_LIVE).await.remove(0);
    let first = plan(&store, &root, COOLDOWN, 3).await.unwrap();
    let parts = claim(&store, kinds::GO_LIVE).await;
    assert_eq!(
        parts.len(),
        2,
        "7 followers in parts of 3: this job and two more"
    );
    let mut everyone = run_part(&store, &root, first, 2).await.0;
    for part in &parts {
        let state: GoLiveJob = serde_json::from_str(&part.payload).unwrap();
        assert!(state.planned);
        everyone.extend(run_part(&store, part, state, 2).await.0);
    }
    everyone.sort();
    let mut expected: Vec<_> = fans.iter().map(|f| f.id).collect();
    expected.sort();
    assert_eq!(everyone, expected, "every follower once, across parts");
}

async fn the_inbox_pages_newest_first_and_marks_read(store: Arc<dyn Store>) {
    let fan = user(&store, "fan").await;
    let stars = users(&store, "star", 3).await;
    for star in &stars {
        store.follow(fan.id, star.id).await.unwrap();
        go_live(&store, star.id, "Live").await;
        let job = claim(&store, kinds::GO_LIVE).await.remove(0);
        fan_out(&store, &job, 10).await;
    }
    let first = store
        .notifications(fan.id, Limit::new(Some(2)).unwrap(), None)
        .await
        .unwrap();
    let names: Vec<_> = first
        .items
        .iter()
        .map(|n| n.creator.username.clone())
        .collect();
    assert_eq!(names, ["star2", "star1"]);
    let rest = store
        .notifications(fan.id, Limit::new(Some(2)).unwrap(), first.next_cursor)
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].creator.username, "star0");
    assert!(rest.next_cursor.is_none());

    assert_eq!(store.unread_notifications(fan.id).await.unwrap(), 3);
    let newest = first.items[0].stream_id;
    assert!(store.mark_notification_read(fan.id, newest).await.unwrap());
    assert!(
        store.mark_notification_read(fan.id, newest).await.unwrap(),
        "idempotent"
    );
    assert!(
        !store
            .mark_notification_read(fan.id, Uuid::now_v7())
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_notification_read(stars[0].id, newest)
            .await
            .unwrap(),
        "not theirs"
    );
    assert_eq!(store.unread_notifications(fan.id).await.unwrap(), 2);
    assert_eq!(store.mark_all_notifications_read(fan.id).await.unwrap(), 2);
    assert_eq!(store.unread_notifications(fan.id).await.unwrap(), 0);
    let read = store
        .notifications(fan.id, Limit::default(), None)
        .await
        .unwrap();
    assert!(read.items.iter().all(|n| n.read_at.is_some()));
}

async fn push_batches_are_enqueued_for_subscribed_followers_who_want_push(store: Arc<dyn Store>) {
    let (star, fans) = audience(&store, 3).await;
    let mut subscriptions = Vec::new();
    for fan in &fans[..2] {
        let sub = store
            .add_push_subscription(
                NewPushSubscription {
                    id: Uuid::now_v7(),
                    user_id: fan.id,
                    endpoint: format!("https://push.example/{}", fan.id),
                    p256dh: "key".into(),
                    auth: "auth".into(),
                },
                10,
            )
            .await
            .unwrap()
            .unwrap();
        subscriptions.push(sub);
    }
    store.set_push_enabled(fans[1].id, false).await.unwrap();
    assert!(!store.push_enabled(fans[1].id).await.unwrap());

    go_live(&store, star.id, "Push").await;
    let job = claim(&store, kinds::GO_LIVE).await.remove(0);
    fan_out(&store, &job, 10).await;
    let push = claim(&store, kinds::PUSH_BATCH).await;
    assert_eq!(push.len(), 1, "one batch, one push job");
    let batch: PushBatchJob = serde_json::from_str(&push[0].payload).unwrap();
    let targets = store.push_targets(&batch).await.unwrap();
    assert_eq!(
        targets,
        vec![subscriptions[0].clone()],
        "fan1 opted out, fan2 has none"
    );

    // Re-subscribing an endpoint replaces its keys; unsubscribing and a gone
    // endpoint remove it.
    let again = store
        .add_push_subscription(
            NewPushSubscription {
                id: Uuid::now_v7(),
                user_id: fans[0].id,
                endpoint: subscriptions[0].endpoint.clone(),
                p256dh: "new".into(),
                auth: "new".into(),
            },
            10,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.id, again.p256dh.as_str()),
        (subscriptions[0].id, "new")
    );
    assert!(
        !store
            .remove_push_subscription(fans[2].id, &again.endpoint)
            .await
            .unwrap(),
        "not theirs"
    );
    store.delete_push_subscription(again.id).await.unwrap();
    assert!(store.push_subscription(again.id).await.unwrap().is_none());
    assert!(
        store
            .remove_push_subscription(fans[1].id, &subscriptions[1].endpoint)
            .await
            .unwrap()
    );
}

async fn stream_events_enqueue_webhook_deliveries_until_disabled(store: Arc<dyn Store>) {
    let star = user(&store, "star").await;
    let dev = user(&store, "dev").await;
    let hook = |event| NewWebhook {
        id: Uuid::now_v7(),
        owner_id: dev.id,
        channel_id: star.id,
        event,
        callback_url: "https://hooks.example/onair".into(),
        secret: "s3cret-s3cret".into(),
    };
    let online = store
        .create_webhook(hook(WebhookEvent::StreamOnline), 2)
        .await
        .unwrap()
        .unwrap();
    let offline = store
        .create_webhook(hook(WebhookEvent::StreamOffline), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .create_webhook(hook(WebhookEvent::StreamOffline), 2)
            .await
            .unwrap(),
        None,
        "at the cap"
    );
    let listed = store
        .webhooks(dev.id, Limit::default(), None)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);

    let stream = go_live(&store, star.id, "Hooked").await;
    let delivered = claim(&store, kinds::WEBHOOK).await;
    assert_eq!(delivered.len(), 1);
    let job: WebhookJob = serde_json::from_str(&delivered[0].payload).unwrap();
    assert_eq!((job.webhook_id, job.stream_id), (online.id, stream.id));
    assert_eq!(job.event, "stream.online");
    store.end_stream(star.id).await.unwrap();
    let delivered = claim(&store, kinds::WEBHOOK).await;
    let job: WebhookJob = serde_json::from_str(&delivered[0].payload).unwrap();
    assert_eq!(
        (job.webhook_id, job.event.as_str()),
        (offline.id, "stream.offline")
    );

    assert!(
        !store
            .record_webhook_delivery(online.id, false, 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_webhook_delivery(online.id, true, 2)
            .await
            .unwrap(),
        "reset"
    );
    assert!(
        !store
            .record_webhook_delivery(online.id, false, 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .record_webhook_delivery(online.id, false, 2)
            .await
            .unwrap(),
        "disabled"
    );
    assert!(
        store
            .webhook(online.id)
            .await
            .unwrap()
            .unwrap()
            .disabled_at
            .is_some()
    );
    go_live(&store, star.id, "Again").await;
    assert!(
        claim(&store, kinds::WEBHOOK).await.is_empty(),
        "disabled: no delivery"
    );

    assert!(
        !store.delete_webhook(star.id, online.id).await.unwrap(),
        "not the owner"
    );
    assert!(store.delete_webhook(dev.id, online.id).await.unwrap());
    assert!(store.webhook(online.id).await.unwrap().is_none());
}

async fn concurrent_webhook_registrations_never_pass_the_cap(store: Arc<dyn Store>) {
    let star = user(&store, "star").await;
    let dev = user(&store, "dev").await;
    let (owner, channel) = (dev.id, star.id);
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let hook = NewWebhook {
                    id: Uuid::now_v7(),
                    owner_id: owner,
                    channel_id: channel,
                    event: WebhookEvent::StreamOnline,
                    callback_url: "https://hooks.example/onair".into(),
                    secret: "s3cret-s3cret".into(),
                };
                store.create_webhook(hook, 3).await.unwrap().is_some()
            })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        created += usize::from(attempt.await.unwrap());
    }
    assert_eq!(created, 3);
    let listed = store
        .webhooks(dev.id, Limit::default(), None)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
}
