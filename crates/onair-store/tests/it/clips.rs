//! Clips: inserted with their cut job, switched to ready or failed, listed per channel,
//! deleted by their clipper, the channel's owner or a moderator.

use std::sync::Arc;

use onair_store::jobs::{ClipJob, MediaDeleteJob, kinds};
use onair_store::{ArchiveStatus, Clip, NewClip, ReadyClip, Store, StoreError};
use uuid::Uuid;

use crate::archives::{claim, publish, recorded};
use crate::support::{flat, pages, sizes, user};

onair_store::backend_tests!(crate::support::on_store =>
    a_clip_is_inserted_with_its_cut_job,
    a_clip_of_an_unknown_broadcast_or_a_foreign_archive_is_not_found,
    a_clip_switches_to_ready_once_or_fails,
    channel_clips_are_listed_newest_first_in_pages,
    a_clip_is_deleted_by_its_clipper_the_owner_or_a_moderator,
);

fn new_clip(clipper: Uuid, stream_id: Uuid, archive_id: Option<Uuid>) -> NewClip {
    NewClip {
        id: Uuid::now_v7(),
        clipper_id: clipper,
        stream_id,
        archive_id,
        title: "Nice play".into(),
        start_secs: 12.5,
        duration_secs: 30.0,
    }
}

/// A clip by `clipper` of a fresh recorded broadcast of `channel`.
async fn clip_of(store: &Arc<dyn Store>, channel: Uuid, clipper: Uuid) -> Clip {
    let archive = recorded(store, channel).await;
    let new = new_clip(clipper, archive.stream_id, Some(archive.id));
    store.insert_clip(new).await.expect("insert clip")
}

async fn a_clip_is_inserted_with_its_cut_job(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let fan = user(&store, "fan").await;
    let archive = recorded(&store, caster.id).await;
    let new = new_clip(fan.id, archive.stream_id, Some(archive.id));
    let clip = store.insert_clip(new.clone()).await.unwrap();
    assert_eq!(
        (clip.id, clip.clipper_id, clip.archive_id, clip.stream_id),
        (new.id, fan.id, Some(archive.id), archive.stream_id)
    );
    assert_eq!((clip.start_secs, clip.duration_secs), (12.5, 30.0));
    assert_eq!(clip.status, ArchiveStatus::Processing);
    assert_eq!(clip.channel.id, caster.id, "on the broadcast's channel");
    assert_eq!(store.clip(clip.id).await.unwrap(), Some(clip.clone()));

    // Of a live broadcast: no archive yet.
    let live = publish(&store, fan.id, None).await;
    let of_live = store
        .insert_clip(new_clip(caster.id, live.id, None))
        .await
        .unwrap();
    assert_eq!((of_live.archive_id, of_live.channel.id), (None, fan.id));

    let jobs = claim(&store, kinds::CLIP_CUT).await;
    let mut cut: Vec<Uuid> = jobs
        .iter()
        .map(|j| serde_json::from_str::<ClipJob>(&j.payload).unwrap().clip_id)
        .collect();
    cut.sort();
    assert_eq!(cut, [clip.id, of_live.id]);
}

async fn a_clip_of_an_unknown_broadcast_or_a_foreign_archive_is_not_found(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let archive = recorded(&store, caster.id).await;
    let elsewhere = recorded(&store, caster.id).await;
    for new in [
        new_clip(caster.id, Uuid::now_v7(), None),
        new_clip(caster.id, elsewhere.stream_id, Some(archive.id)),
        new_clip(caster.id, archive.stream_id, Some(Uuid::now_v7())),
    ] {
        let id = new.id;
        assert!(matches!(
            store.insert_clip(new).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(store.clip(id).await.unwrap(), None);
    }
    assert!(claim(&store, kinds::CLIP_CUT).await.is_empty());
}

async fn a_clip_switches_to_ready_once_or_fails(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let clip = clip_of(&store, caster.id, caster.id).await;
    let job = claim(&store, kinds::CLIP_CUT).await.remove(0);
    let made = ReadyClip {
        playlist_path: format!("clips/{}/index.m3u8", clip.id),
        thumbnail_path: Some(format!("clips/{}/thumbnail.jpg", clip.id)),
        duration_secs: 29.97,
        size_bytes: 2_000,
    };
    assert!(
        store
            .clip_ready(job.lease(), clip.id, made.clone())
            .await
            .unwrap()
    );
    let ready = store.clip(clip.id).await.unwrap().unwrap();
    assert_eq!(ready.status, ArchiveStatus::Ready);
    assert_eq!(ready.playlist_path, Some(made.playlist_path.clone()));
    assert_eq!((ready.duration_secs, ready.size_bytes), (29.97, 2_000));
    assert!(!store.clip_ready(job.lease(), clip.id, made).await.unwrap());
    assert!(!store.clip_failed(clip.id, "late").await.unwrap());
    // Clips count against the channel's storage.
    assert_eq!(store.storage_used(caster.id).await.unwrap(), 2_000);

    let other = clip_of(&store, caster.id, caster.id).await;
    assert!(store.clip_failed(other.id, "out of range").await.unwrap());
    let failed = store.clip(other.id).await.unwrap().unwrap();
    assert_eq!(failed.status, ArchiveStatus::Failed);
    assert_eq!(failed.failure_reason.as_deref(), Some("out of range"));
}

async fn channel_clips_are_listed_newest_first_in_pages(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let other = user(&store, "other").await;
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(clip_of(&store, caster.id, other.id).await.id);
        clip_of(&store, other.id, caster.id).await;
    }
    mine.reverse();
    let walked = pages(2, |limit, after| {
        store.channel_clips(caster.id, limit, after)
    })
    .await;
    assert_eq!(sizes(&walked), [2, 1]);
    assert_eq!(flat(&walked, |c| c.id), mine);
    let none = store
        .channel_clips(Uuid::now_v7(), Default::default(), None)
        .await
        .unwrap();
    assert!(none.items.is_empty());
}

async fn a_clip_is_deleted_by_its_clipper_the_owner_or_a_moderator(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let clipper = user(&store, "clipper").await;
    let moderator = user(&store, "moderator").await;
    let stranger = user(&store, "stranger").await;
    store
        .set_moderator(caster.id, moderator.id, true)
        .await
        .unwrap();
    let mut deleted = Vec::new();
    for by in [clipper.id, caster.id, moderator.id] {
        let clip = clip_of(&store, caster.id, clipper.id).await;
        assert!(!store.delete_clip(clip.id, stranger.id).await.unwrap());
        assert!(store.clip(clip.id).await.unwrap().is_some());
        assert!(store.delete_clip(clip.id, by).await.unwrap());
        assert_eq!(store.clip(clip.id).await.unwrap(), None);
        deleted.push(format!("clips/{}/", clip.id));
    }
    assert!(matches!(
        store.delete_clip(Uuid::now_v7(), caster.id).await,
        Err(StoreError::NotFound)
    ));
    let mut removed: Vec<String> = claim(&store, kinds::MEDIA_DELETE)
        .await
        .iter()
        .flat_map(|j| {
            serde_json::from_str::<MediaDeleteJob>(&j.payload)
                .unwrap()
                .prefixes
        })
        .collect();
    removed.sort();
    deleted.sort();
    assert_eq!(removed, deleted);
}
