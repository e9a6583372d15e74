use std::sync::Arc;

use chrono::Duration;
use onair_store::{Archive, ArchiveStatus, NewArchive, Store, StoreError, Timestamp};
use uuid::Uuid;

use crate::support::{flat, from_now, pages, past_stream, sizes, user};

onair_store::backend_tests!(crate::support::on_store =>
    insert_archive_joins_the_stream_title_and_owner,
    archive_of_an_unknown_stream_is_not_found,
    archive_by_id_returns_any_status,
    list_archives_shows_ready_ones_newest_first_in_pages,
    user_archives_lists_only_the_owners_ready_archives,
);

/// An archive of `stream_id` made `minutes_ago`.
fn new_archive(stream_id: Uuid, status: ArchiveStatus, minutes_ago: i64) -> NewArchive {
    let id = Uuid::now_v7();
    NewArchive {
        id,
        stream_id,
        status,
        duration_ms: 90_000,
        playlist_path: Some(format!("archives/{id}/index.m3u8")),
        created_at: from_now(-Duration::minutes(minutes_ago)),
    }
}

async fn insert(
    store: &Arc<dyn Store>,
    stream_id: Uuid,
    status: ArchiveStatus,
    minutes_ago: i64,
) -> Archive {
    store
        .insert_archive(new_archive(stream_id, status, minutes_ago))
        .await
        .expect("insert archive")
}

fn ids(archives: &[&Archive]) -> Vec<Uuid> {
    archives.iter().map(|a| a.id).collect()
}

async fn insert_archive_joins_the_stream_title_and_owner(store: Arc<dyn Store>) {
    let maker = user(&store, "maker").await;
    let stream = past_stream(&store, maker.id, "Marathon").await;
    let new = new_archive(stream.id, ArchiveStatus::Ready, 0);
    let (id, created_at, path) = (new.id, new.created_at, new.playlist_path.clone());
    let archive = store.insert_archive(new).await.unwrap();
    assert_eq!(
        archive,
        Archive {
            id,
            stream_id: stream.id,
            title: "Marathon".into(),
            status: ArchiveStatus::Ready,
            duration_ms: 90_000,
            playlist_path: path,
            created_at,
            owner: stream.owner.clone(),
        }
    );
    assert_eq!(store.archive(id).await.unwrap(), Some(archive));
    assert_eq!(stream.owner.id, maker.id);
}

async fn archive_of_an_unknown_stream_is_not_found(store: Arc<dyn Store>) {
    let new = new_archive(Uuid::now_v7(), ArchiveStatus::Ready, 0);
    let id = new.id;
    assert!(matches!(
        store.insert_archive(new).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.archive(id).await.unwrap(), None);
    let listed = store.list_archives(Default::default(), None).await.unwrap();
    assert!(listed.items.is_empty() && listed.next_cursor.is_none());
}

async fn archive_by_id_returns_any_status(store: Arc<dyn Store>) {
    let maker = user(&store, "maker").await;
    let stream = past_stream(&store, maker.id, "Attempt").await;
    for status in [
        ArchiveStatus::Processing,
        ArchiveStatus::Ready,
        ArchiveStatus::Failed,
    ] {
        let archive = insert(&store, stream.id, status, 0).await;
        let found = store.archive(archive.id).await.unwrap();
        assert_eq!(found.as_ref().map(|a| a.status), Some(status));
    }
    assert_eq!(store.archive(Uuid::now_v7()).await.unwrap(), None);
}

/// Two makers' archives, ready or not, created in an order unlike their timestamps.
/// Returns (all archives, the first maker's id).
async fn mixed_archives(store: &Arc<dyn Store>) -> (Vec<Archive>, Uuid) {
    let maker = user(store, "maker").await;
    let other = user(store, "other").await;
    let mine = past_stream(store, maker.id, "Mine").await;
    let theirs = past_stream(store, other.id, "Theirs").await;
    let mut all = Vec::new();
    for (stream, status, minutes_ago) in [
        (&mine, ArchiveStatus::Ready, 30),
        (&theirs, ArchiveStatus::Ready, 10),
        (&mine, ArchiveStatus::Processing, 5),
        (&mine, ArchiveStatus::Ready, 50),
        (&theirs, ArchiveStatus::Failed, 1),
        (&mine, ArchiveStatus::Ready, 20),
        (&theirs, ArchiveStatus::Ready, 40),
    ] {
        all.push(insert(store, stream.id, status, minutes_ago).await);
    }
    (all, maker.id)
}

/// The ready ones among `all` matching `keep`, newest first.
fn ready_newest_first(all: &[Archive], keep: impl Fn(&Archive) -> bool) -> Vec<&Archive> {
    let mut ready: Vec<&Archive> = all
        .iter()
        .filter(|a| a.status == ArchiveStatus::Ready && keep(a))
        .collect();
    ready.sort_by_key(|a| std::cmp::Reverse(a.created_at));
    ready
}

async fn list_archives_shows_ready_ones_newest_first_in_pages(store: Arc<dyn Store>) {
    let (all, _) = mixed_archives(&store).await;
    let expected = ready_newest_first(&all, |_| true);
    assert_eq!(expected.len(), 5);

    let walked = pages(2, |limit, after| store.list_archives(limit, after)).await;
    assert_eq!(sizes(&walked), [2, 2, 1]);
    assert_eq!(flat(&walked, |a| a.id), ids(&expected));
    let rows: Vec<&Archive> = walked.iter().flatten().collect();
    assert_eq!(rows, expected, "rows carry the title and owner");
    let created: Vec<Timestamp> = rows.iter().map(|a| a.created_at).collect();
    assert!(created.is_sorted_by(|a, b| a > b), "{created:?}");
}

async fn user_archives_lists_only_the_owners_ready_archives(store: Arc<dyn Store>) {
    let (all, maker) = mixed_archives(&store).await;
    let expected = ready_newest_first(&all, |a| a.owner.id == maker);
    assert_eq!(expected.len(), 3);

    let walked = pages(2, |limit, after| store.user_archives(maker, limit, after)).await;
    assert_eq!(sizes(&walked), [2, 1]);
    assert_eq!(flat(&walked, |a| a.id), ids(&expected));
    assert!(walked.iter().flatten().all(|a| a.title == "Mine"));

    let nobody = store
        .user_archives(Uuid::now_v7(), Default::default(), None)
        .await
        .unwrap();
    assert!(nobody.items.is_empty() && nobody.next_cursor.is_none());
}
