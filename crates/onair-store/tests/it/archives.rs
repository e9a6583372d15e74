use onair_core::Limit;
use onair_store::{ArchiveStatus, NewArchive, StoreError, Timestamp};
use uuid::Uuid;

use crate::support::{each_store, user};

fn archive(stream_id: Uuid, status: ArchiveStatus) -> NewArchive {
    NewArchive {
        id: Uuid::now_v7(),
        stream_id,
        status,
        duration_ms: 60_000,
        playlist_path: Some("archives/x/index.m3u8".into()),
        created_at: Timestamp::now(),
    }
}

#[tokio::test]
async fn archives_join_their_broadcast_and_list_when_ready() {
    each_store(|store| async move {
        let maker = user(&store, "maker").await;
        let other = user(&store, "other").await;
        let stream = store
            .start_stream(Uuid::now_v7(), maker.id, "Marathon", None)
            .await
            .unwrap();
        store.end_stream(maker.id).await.unwrap();
        let other_stream = store
            .start_stream(Uuid::now_v7(), other.id, "Elsewhere", None)
            .await
            .unwrap();

        let ready_one = store
            .insert_archive(archive(stream.id, ArchiveStatus::Ready))
            .await
            .unwrap();
        assert_eq!(
            (ready_one.title.as_str(), ready_one.owner.id),
            ("Marathon", maker.id)
        );
        let processing = store
            .insert_archive(archive(stream.id, ArchiveStatus::Processing))
            .await
            .unwrap();
        let ready_two = store
            .insert_archive(archive(stream.id, ArchiveStatus::Ready))
            .await
            .unwrap();
        let foreign = store
            .insert_archive(archive(other_stream.id, ArchiveStatus::Ready))
            .await
            .unwrap();
        assert!(matches!(
            store
                .insert_archive(archive(Uuid::now_v7(), ArchiveStatus::Ready))
                .await,
            Err(StoreError::NotFound)
        ));

        let all = store.list_archives(Limit::default(), None).await.unwrap();
        let ids: Vec<Uuid> = all.items.iter().map(|a| a.id).collect();
        assert_eq!(
            ids,
            [foreign.id, ready_two.id, ready_one.id],
            "ready only, newest first"
        );

        let first = store
            .user_archives(maker.id, Limit::new(Some(1)).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(first.items[0].id, ready_two.id);
        let rest = store
            .user_archives(maker.id, Limit::new(Some(1)).unwrap(), first.next_cursor)
            .await
            .unwrap();
        assert_eq!(rest.items[0].id, ready_one.id);
        assert_eq!(rest.next_cursor, None);

        assert_eq!(
            store.archive(processing.id).await.unwrap().unwrap().status,
            ArchiveStatus::Processing
        );
        assert_eq!(store.archive(Uuid::now_v7()).await.unwrap(), None);
    })
    .await;
}
