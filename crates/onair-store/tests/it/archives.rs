//! Archives: recorded when a broadcast ends (once, whatever the end path), processed by
//! a job that reports progress under its lease, shown by visibility, deleted by owners.

use std::sync::Arc;

use chrono::Duration;
use onair_core::StreamStatus;
use onair_store::jobs::{ArchiveJob, ClaimedJob, JobLease, MediaDeleteJob, kinds};
use onair_store::{
    Archive, ArchiveStatus, ArchiveVisibility, ProfilePatch, ReadyArchive, Store, StoreError,
    StreamView, Timestamp,
};
use uuid::Uuid;

use crate::support::{flat, from_now, pages, past_stream, sizes, user};

onair_store::backend_tests!(crate::support::on_store =>
    ending_a_recorded_broadcast_archives_it_once,
    every_end_path_archives_the_broadcast,
    a_reconnect_within_the_grace_window_is_one_archive,
    broadcasts_not_recorded_leave_no_archive,
    the_storage_quota_refuses_recording_with_a_reason,
    progress_extends_the_lease_until_it_is_lost,
    ready_switches_once_and_failed_keeps_the_recording,
    visibility_decides_who_lists_an_archive,
    deleting_an_archive_enqueues_removing_its_objects,
    expired_archives_come_oldest_first,
);

/// A broadcast of `owner` fed by a publisher (so recorded unless refused), still live.
pub async fn publish(store: &Arc<dyn Store>, owner: Uuid, quota: Option<i64>) -> StreamView {
    let (stream, _) = store
        .attach_publisher(owner, Uuid::now_v7(), Uuid::now_v7(), quota, None)
        .await
        .expect("attach publisher");
    stream
}

/// A recorded broadcast of `owner`, ended; returns its archive.
pub async fn recorded(store: &Arc<dyn Store>, owner: Uuid) -> Archive {
    let stream = publish(store, owner, None).await;
    assert!(stream.recording);
    store.end_stream(owner).await.expect("end stream");
    the_archive(store, owner, stream.id).await
}

/// The archive of broadcast `stream_id` of `owner`, which must exist.
async fn the_archive(store: &Arc<dyn Store>, owner: Uuid, stream_id: Uuid) -> Archive {
    let all = every_archive(store, owner).await;
    all.into_iter()
        .find(|a| a.stream_id == stream_id)
        .expect("the broadcast's archive")
}

/// Every archive of `owner`, as the owner sees them.
async fn every_archive(store: &Arc<dyn Store>, owner: Uuid) -> Vec<Archive> {
    let page = store
        .user_archives(owner, Some(owner), Default::default(), None)
        .await
        .unwrap();
    page.items
}

/// Claims every ready job and returns those of `kind`.
pub async fn claim(store: &Arc<dyn Store>, kind: &str) -> Vec<ClaimedJob> {
    let claimed = store
        .claim_jobs(100, from_now(Duration::seconds(30)))
        .await
        .unwrap();
    claimed.into_iter().filter(|j| j.kind == kind).collect()
}

/// The one processing job there is, claimed.
async fn processing_job(store: &Arc<dyn Store>) -> (ClaimedJob, ArchiveJob) {
    let mut jobs = claim(store, kinds::ARCHIVE_PROCESS).await;
    assert_eq!(jobs.len(), 1, "one processing job");
    let job = jobs.remove(0);
    let payload = serde_json::from_str(&job.payload).unwrap();
    (job, payload)
}

fn ready(id: Uuid, size_bytes: i64) -> ReadyArchive {
    ReadyArchive {
        playlist_path: format!("vod/{id}/v1/master.m3u8"),
        thumbnail_path: Some(format!("vod/{id}/v1/thumbnail.jpg")),
        duration_ms: 15_000,
        size_bytes,
    }
}

async fn ending_a_recorded_broadcast_archives_it_once(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let session = Uuid::now_v7();
    let (stream, _) = store
        .attach_publisher(caster.id, session, Uuid::now_v7(), None, None)
        .await
        .unwrap();
    assert!(stream.recording && stream.recording_refused.is_none());
    let ended = store.end_stream(caster.id).await.unwrap();
    // Every other end path finds it ended already.
    assert!(!store.end_published_stream(session).await.unwrap());
    assert!(
        store
            .end_abandoned_streams(from_now(Duration::seconds(1)))
            .await
            .unwrap()
            .is_empty()
    );

    let archives = every_archive(&store, caster.id).await;
    assert_eq!(archives.len(), 1);
    let archive = &archives[0];
    assert_eq!(archive.stream_id, stream.id);
    assert_eq!(archive.status, ArchiveStatus::Processing);
    assert_eq!(archive.visibility, ArchiveVisibility::Public);
    assert_eq!(archive.progress, 0.0);
    assert_eq!(
        archive.playlist_path.as_deref(),
        Some(format!("live/{}/recording.m3u8", stream.id).as_str())
    );
    assert_eq!(archive.title, "caster is live");
    assert_eq!(Some(archive.created_at), ended.ended_at);
    assert_eq!(archive.owner.id, caster.id);
    let (_, job) = processing_job(&store).await;
    assert_eq!(
        job,
        ArchiveJob {
            archive_id: archive.id,
            stream_id: stream.id
        }
    );
    // A later edit of the broadcast does not rename its archive.
    let patch = onair_store::StreamPatch {
        title: Some(onair_core::StreamTitle::parse("Renamed").unwrap()),
        ..Default::default()
    };
    store.update_stream(stream.id, patch).await.unwrap();
    let again = store.archive(archive.id).await.unwrap().unwrap();
    assert_eq!(again.title, "caster is live");
}

async fn every_end_path_archives_the_broadcast(store: Arc<dyn Store>) {
    let by_hand = user(&store, "byhand").await;
    let failed = user(&store, "failed").await;
    let gone = user(&store, "gone").await;
    let mut streams = Vec::new();
    for (owner, session) in [
        (&by_hand, Uuid::now_v7()),
        (&failed, Uuid::now_v7()),
        (&gone, Uuid::now_v7()),
    ] {
        let (stream, _) = store
            .attach_publisher(owner.id, session, Uuid::now_v7(), None, None)
            .await
            .unwrap();
        streams.push((owner.id, session, stream));
    }
    store.end_stream(by_hand.id).await.unwrap();
    assert!(store.end_published_stream(streams[1].1).await.unwrap());
    assert!(store.detach_publisher(streams[2].1).await.unwrap());
    let left = store.stream(streams[2].2.id).await.unwrap().unwrap();
    assert_eq!(left.status, StreamStatus::Offline);
    let swept = store
        .end_abandoned_streams(from_now(Duration::seconds(1)))
        .await
        .unwrap();
    assert_eq!(swept.len(), 1);

    for (owner, _, stream) in &streams {
        let archive = the_archive(&store, *owner, stream.id).await;
        let ended = store.stream(stream.id).await.unwrap().unwrap().ended_at;
        assert_eq!(
            Some(archive.created_at),
            ended,
            "made when the broadcast ended"
        );
    }
    assert_eq!(claim(&store, kinds::ARCHIVE_PROCESS).await.len(), 3);
}

async fn a_reconnect_within_the_grace_window_is_one_archive(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let (stream, _) = store
        .attach_publisher(caster.id, first, Uuid::now_v7(), None, None)
        .await
        .unwrap();
    store.detach_publisher(first).await.unwrap();
    // Over any quota by now: the broadcast being recorded stays so.
    let (again, resumed) = store
        .attach_publisher(caster.id, second, Uuid::now_v7(), Some(0), None)
        .await
        .unwrap();
    assert!(resumed && again.id == stream.id);
    assert!(again.recording && again.recording_refused.is_none());
    assert!(store.end_published_stream(second).await.unwrap());
    assert_eq!(every_archive(&store, caster.id).await.len(), 1);
    assert_eq!(claim(&store, kinds::ARCHIVE_PROCESS).await.len(), 1);
}

async fn broadcasts_not_recorded_leave_no_archive(store: Arc<dyn Store>) {
    // Started through the API with no publisher: there is no video to record.
    let talker = user(&store, "talker").await;
    let ended = past_stream(&store, talker.id, "Talk only").await;
    assert!(!ended.recording && ended.recording_refused.is_none());

    // Recording turned off: not recorded, and that is no refusal.
    let private = user(&store, "private").await;
    let off = ProfilePatch {
        record_broadcasts: Some(false),
        ..ProfilePatch::default()
    };
    store.update_profile(private.id, off).await.unwrap();
    let stream = publish(&store, private.id, Some(0)).await;
    assert!(!stream.recording && stream.recording_refused.is_none());
    store.end_stream(private.id).await.unwrap();

    for owner in [talker.id, private.id] {
        assert!(every_archive(&store, owner).await.is_empty());
    }
    assert!(claim(&store, kinds::ARCHIVE_PROCESS).await.is_empty());
}

async fn the_storage_quota_refuses_recording_with_a_reason(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let first = recorded(&store, caster.id).await;
    let (job, _) = processing_job(&store).await;
    assert!(
        store
            .archive_ready(job.lease(), first.id, ready(first.id, 1_000))
            .await
            .unwrap()
    );
    assert_eq!(store.storage_used(caster.id).await.unwrap(), 1_000);

    let refused = publish(&store, caster.id, Some(1_000)).await;
    assert!(!refused.recording);
    assert_eq!(
        refused.recording_refused.as_deref(),
        Some("storage_quota_exceeded")
    );
    store.end_stream(caster.id).await.unwrap();
    assert_eq!(every_archive(&store, caster.id).await.len(), 1);

    let under = publish(&store, caster.id, Some(1_001)).await;
    assert!(under.recording && under.recording_refused.is_none());
    store.end_stream(caster.id).await.unwrap();
    assert_eq!(every_archive(&store, caster.id).await.len(), 2);
}

async fn progress_extends_the_lease_until_it_is_lost(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let archive = recorded(&store, caster.id).await;
    let (job, _) = processing_job(&store).await;
    let later = from_now(Duration::minutes(10));
    store
        .archive_progress(job.lease(), archive.id, 0.5, later)
        .await
        .unwrap();
    let progressed = store.archive(archive.id).await.unwrap().unwrap();
    assert_eq!(progressed.progress, 0.5);
    assert_eq!(progressed.status, ArchiveStatus::Processing);

    // A worker whose claim was taken over writes nothing.
    let stale = JobLease {
        attempt: job.attempts + 1,
        ..job.lease()
    };
    assert!(matches!(
        store.archive_progress(stale, archive.id, 0.9, later).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        store
            .archive_ready(stale, archive.id, ready(archive.id, 5))
            .await,
        Err(StoreError::LeaseLost)
    ));
    let kept = store.archive(archive.id).await.unwrap().unwrap();
    assert_eq!(
        (kept.progress, kept.status),
        (0.5, ArchiveStatus::Processing)
    );
    // The extended lease holds: nothing expires now.
    assert_eq!(store.release_expired_jobs(5).await.unwrap(), 0);
}

async fn ready_switches_once_and_failed_keeps_the_recording(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let archive = recorded(&store, caster.id).await;
    let (job, _) = processing_job(&store).await;
    assert!(
        store
            .archive_ready(job.lease(), archive.id, ready(archive.id, 4_096))
            .await
            .unwrap()
    );
    let done = store.archive(archive.id).await.unwrap().unwrap();
    assert_eq!((done.status, done.progress), (ArchiveStatus::Ready, 1.0));
    assert_eq!(done.playlist_path, Some(ready(archive.id, 0).playlist_path));
    assert_eq!(done.thumbnail_path, ready(archive.id, 0).thumbnail_path);
    assert_eq!((done.duration_ms, done.size_bytes), (15_000, 4_096));
    assert!(
        !store
            .archive_ready(job.lease(), archive.id, ready(archive.id, 1))
            .await
            .unwrap(),
        "ready once"
    );
    assert!(!store.archive_failed(archive.id, "late").await.unwrap());

    let other = recorded(&store, caster.id).await;
    assert!(
        store
            .archive_failed(other.id, "corrupt input")
            .await
            .unwrap()
    );
    let failed = store.archive(other.id).await.unwrap().unwrap();
    assert_eq!(failed.status, ArchiveStatus::Failed);
    assert_eq!(failed.failure_reason.as_deref(), Some("corrupt input"));
    assert_eq!(failed.playlist_path, other.playlist_path, "still playable");
}

async fn visibility_decides_who_lists_an_archive(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let viewer = user(&store, "viewer").await;
    let mut made = Vec::new();
    for visibility in [
        ArchiveVisibility::Private,
        ArchiveVisibility::Public,
        ArchiveVisibility::Unlisted,
        ArchiveVisibility::Public,
    ] {
        let archive = recorded(&store, caster.id).await;
        let set = store
            .set_archive_visibility(archive.id, caster.id, visibility)
            .await
            .unwrap();
        assert_eq!(set.visibility, visibility);
        made.push(set);
    }
    let failed = recorded(&store, caster.id).await;
    store.archive_failed(failed.id, "broken").await.unwrap();
    assert!(matches!(
        store
            .set_archive_visibility(made[1].id, viewer.id, ArchiveVisibility::Private)
            .await,
        Err(StoreError::NotFound)
    ));

    let public = vec![made[3].id, made[1].id];
    let walked = pages(1, |limit, after| store.list_archives(limit, after)).await;
    assert_eq!(sizes(&walked), [1, 1]);
    assert_eq!(flat(&walked, |a| a.id), public);
    for seen_by in [None, Some(viewer.id)] {
        let walked = pages(1, |limit, after| {
            store.user_archives(caster.id, seen_by, limit, after)
        })
        .await;
        assert_eq!(flat(&walked, |a| a.id), public);
    }
    let walked = pages(2, |limit, after| {
        store.user_archives(caster.id, Some(caster.id), limit, after)
    })
    .await;
    assert_eq!(sizes(&walked), [2, 2, 1]);
    let mut every: Vec<Uuid> = made.iter().map(|a| a.id).chain([failed.id]).collect();
    every.reverse();
    assert_eq!(flat(&walked, |a| a.id), every, "the owner sees every one");
    let created: Vec<Timestamp> = flat(&walked, |a| a.created_at);
    assert!(created.is_sorted_by(|a, b| a > b), "{created:?}");
}

async fn deleting_an_archive_enqueues_removing_its_objects(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let other = user(&store, "other").await;
    let archive = recorded(&store, caster.id).await;
    claim(&store, kinds::ARCHIVE_PROCESS).await;
    assert!(matches!(
        store.delete_archive(archive.id, other.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.archive(archive.id).await.unwrap().is_some());
    store.delete_archive(archive.id, caster.id).await.unwrap();
    assert_eq!(store.archive(archive.id).await.unwrap(), None);
    assert!(matches!(
        store.delete_archive(archive.id, caster.id).await,
        Err(StoreError::NotFound)
    ));
    let jobs = claim(&store, kinds::MEDIA_DELETE).await;
    assert_eq!(jobs.len(), 1);
    let job: MediaDeleteJob = serde_json::from_str(&jobs[0].payload).unwrap();
    assert_eq!(
        job.prefixes,
        [
            format!("live/{}/", archive.stream_id),
            format!("vod/{}/", archive.id)
        ]
    );
}

async fn expired_archives_come_oldest_first(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(recorded(&store, caster.id).await.id);
    }
    let past = from_now(-Duration::minutes(1));
    assert!(store.expired_archives(past, 10).await.unwrap().is_empty());
    let now = from_now(Duration::seconds(1));
    let expired = store.expired_archives(now, 2).await.unwrap();
    let ids: Vec<Uuid> = expired.iter().map(|a| a.id).collect();
    assert_eq!(ids, made[..2]);
}
