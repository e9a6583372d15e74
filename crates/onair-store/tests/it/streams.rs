use onair_core::{Category, Limit, StreamStatus, StreamTitle};
use onair_store::{Conflict, StoreError, StreamPatch, Timestamp};
use uuid::Uuid;

use crate::support::{each_store, user};

#[tokio::test]
async fn a_broadcast_starts_once_and_ends() {
    each_store(|store| async move {
        let caster = user(&store, "caster").await;
        let live = store
            .start_stream(Uuid::now_v7(), caster.id, "Speedrun", Some("Games"))
            .await
            .unwrap();
        assert_eq!(live.status, StreamStatus::Live);
        assert_eq!(live.owner.username, "caster");
        assert_eq!(live.category.as_deref(), Some("Games"));
        assert_eq!(
            store
                .profile(caster.id)
                .await
                .unwrap()
                .unwrap()
                .live_stream_id,
            Some(live.id)
        );

        let again = store
            .start_stream(Uuid::now_v7(), caster.id, "Again", None)
            .await;
        assert!(matches!(
            again,
            Err(StoreError::Conflict(Conflict::ActiveStream))
        ));

        let ended = store.end_stream(caster.id).await.unwrap();
        assert_eq!((ended.id, ended.status), (live.id, StreamStatus::Ended));
        assert!(ended.ended_at.is_some());
        assert!(matches!(
            store.end_stream(caster.id).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            store
                .profile(caster.id)
                .await
                .unwrap()
                .unwrap()
                .live_stream_id,
            None
        );
    })
    .await;
}

#[tokio::test]
async fn stream_patches() {
    each_store(|store| async move {
        let caster = user(&store, "editor").await;
        let stream = store
            .start_stream(Uuid::now_v7(), caster.id, "Old", Some("Art"))
            .await
            .unwrap();
        let patch = StreamPatch {
            title: Some(StreamTitle::parse("New").unwrap()),
            category: None,
        };
        let updated = store.update_stream(stream.id, patch).await.unwrap();
        assert_eq!(
            (updated.title.as_str(), updated.category.as_deref()),
            ("New", Some("Art"))
        );
        let cleared = store
            .update_stream(
                stream.id,
                StreamPatch {
                    title: None,
                    category: Some(None),
                },
            )
            .await
            .unwrap();
        assert_eq!(cleared.category, None);
        let set = StreamPatch {
            title: None,
            category: Some(Some(Category::parse("Music").unwrap())),
        };
        assert_eq!(
            store
                .update_stream(stream.id, set)
                .await
                .unwrap()
                .category
                .as_deref(),
            Some("Music")
        );
        assert!(matches!(
            store
                .update_stream(Uuid::now_v7(), StreamPatch::default())
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(store.stream(Uuid::now_v7()).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn lists_by_status_and_by_user_are_keyset_paginated() {
    each_store(|store| async move {
        let mut live = Vec::new();
        for i in 0..5 {
            let caster = user(&store, &format!("live{i}")).await;
            live.push(
                store
                    .start_stream(Uuid::now_v7(), caster.id, "show", None)
                    .await
                    .unwrap()
                    .id,
            );
        }
        let quitter = user(&store, "quitter").await;
        store
            .start_stream(Uuid::now_v7(), quitter.id, "first", None)
            .await
            .unwrap();
        let first = store.end_stream(quitter.id).await.unwrap();
        store
            .start_stream(Uuid::now_v7(), quitter.id, "second", None)
            .await
            .unwrap();
        let second = store.end_stream(quitter.id).await.unwrap();

        let limit = Limit::new(Some(2)).unwrap();
        let (mut seen, mut cursor) = (Vec::new(), None);
        loop {
            let page = store
                .list_streams(StreamStatus::Live, limit, cursor)
                .await
                .unwrap();
            assert!(page.items.iter().all(|s| s.status == StreamStatus::Live));
            seen.extend(page.items.iter().map(|s| s.id));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        live.reverse();
        assert_eq!(seen, live, "most recently started first");

        let ended = store
            .list_streams(StreamStatus::Ended, Limit::default(), None)
            .await
            .unwrap();
        assert_eq!(
            ended.items.iter().map(|s| s.id).collect::<Vec<_>>(),
            [second.id, first.id]
        );
        let page = store
            .user_streams(quitter.id, Limit::new(Some(1)).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(page.items[0].id, second.id);
        let rest = store
            .user_streams(quitter.id, Limit::new(Some(1)).unwrap(), page.next_cursor)
            .await
            .unwrap();
        assert_eq!(rest.items[0].id, first.id);
        assert_eq!(rest.next_cursor, None);
    })
    .await;
}

#[tokio::test]
async fn publishers_attach_detach_resume_and_are_swept() {
    each_store(|store| async move {
        let caster = user(&store, "publisher").await;
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        let (stream, resumed) = store
            .attach_publisher(caster.id, first, Uuid::now_v7())
            .await
            .unwrap();
        assert!(!resumed);
        assert_eq!(stream.status, StreamStatus::Live);
        assert_eq!(stream.title, "publisher is live");
        // The same publisher again is a no-op; another one is refused.
        assert_eq!(
            store
                .attach_publisher(caster.id, first, Uuid::now_v7())
                .await
                .unwrap()
                .0
                .id,
            stream.id
        );
        let taken = store
            .attach_publisher(caster.id, second, Uuid::now_v7())
            .await;
        assert!(matches!(
            taken,
            Err(StoreError::Conflict(Conflict::ActiveStream))
        ));

        assert!(store.detach_publisher(first).await.unwrap());
        assert!(
            !store.detach_publisher(first).await.unwrap(),
            "already detached"
        );
        assert_eq!(
            store.stream(stream.id).await.unwrap().unwrap().status,
            StreamStatus::Offline
        );
        // Back within the window: the same broadcast continues.
        let (again, resumed) = store
            .attach_publisher(caster.id, second, Uuid::now_v7())
            .await
            .unwrap();
        assert!(resumed);
        assert_eq!((again.id, again.status), (stream.id, StreamStatus::Live));

        // Gone for good: the sweep ends offline broadcasts older than the cutoff only.
        store.detach_publisher(second).await.unwrap();
        let past = Timestamp::from(chrono::Utc::now() - chrono::Duration::seconds(60));
        assert_eq!(store.end_abandoned_streams(past).await.unwrap(), 0);
        let future = Timestamp::from(chrono::Utc::now() + chrono::Duration::seconds(1));
        assert_eq!(store.end_abandoned_streams(future).await.unwrap(), 1);
        assert_eq!(
            store.stream(stream.id).await.unwrap().unwrap().status,
            StreamStatus::Ended
        );

        // A new broadcast is titled like the previous one.
        let third = Uuid::now_v7();
        let (next, resumed) = store
            .attach_publisher(caster.id, third, Uuid::now_v7())
            .await
            .unwrap();
        assert!(!resumed);
        assert_ne!(next.id, stream.id);
        assert_eq!(next.title, "publisher is live");
        assert!(store.end_published_stream(third).await.unwrap());
        assert_eq!(
            store.stream(next.id).await.unwrap().unwrap().status,
            StreamStatus::Ended
        );
        assert!(matches!(
            store
                .attach_publisher(Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7())
                .await,
            Err(StoreError::NotFound)
        ));
    })
    .await;
}
