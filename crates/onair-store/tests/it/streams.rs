use std::sync::Arc;

use chrono::Duration;
use onair_core::{AvatarUrl, Category, DisplayName, Limit, StreamSort, StreamStatus, StreamTitle};
use onair_store::{
    Conflict, ProfilePatch, Store, StoreError, StreamPatch, StreamView, ViewerCountUpdate,
};
use uuid::Uuid;

use crate::support::{flat, from_now, go_live, pages, past_stream, sizes, user, users};

onair_store::backend_tests!(crate::support::on_store =>
    start_stream_is_live_with_its_owner_joined,
    a_second_start_while_live_is_an_active_stream_conflict,
    concurrent_starts_leave_one_live_stream,
    end_stream_ends_the_live_broadcast_once,
    stream_patch_sets_keeps_and_clears,
    live_list_shows_only_live_streams_newest_first_in_pages,
    live_list_by_viewers_pages_most_watched_first,
    ended_list_and_user_streams_paginate,
    publishers_attach_detach_resume_and_are_swept,
    a_lapsed_ingest_lease_takes_the_broadcast_offline,
);

fn ids(streams: &[StreamView]) -> Vec<Uuid> {
    streams.iter().map(|s| s.id).collect()
}

async fn start_stream_is_live_with_its_owner_joined(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let caster = store
        .update_profile(
            caster.id,
            ProfilePatch {
                display_name: Some(Some(DisplayName::parse("The Caster").unwrap())),
                avatar_url: Some(Some(AvatarUrl::parse("https://cdn.example/c.png").unwrap())),
                ..ProfilePatch::default()
            },
        )
        .await
        .unwrap();
    let id = Uuid::now_v7();
    let before = from_now(Duration::zero());
    let live = store
        .start_stream(id, caster.id, "Speedrun", Some("Games"))
        .await
        .unwrap();
    assert_eq!(live.id, id);
    assert_eq!(live.status, StreamStatus::Live);
    assert_eq!(
        (live.title.as_str(), live.category.as_deref()),
        ("Speedrun", Some("Games"))
    );
    assert!(live.started_at >= before);
    assert_eq!(live.ended_at, None);
    assert_eq!(
        (
            live.viewer_count,
            live.peak_viewer_count,
            live.unique_viewer_count
        ),
        (0, 0, 0)
    );
    assert_eq!(live.owner.id, caster.id);
    assert_eq!(live.owner.username, "caster");
    assert_eq!(live.owner.display_name, caster.display_name);
    assert_eq!(live.owner.avatar_url, caster.avatar_url);
    assert_eq!(store.stream(id).await.unwrap(), Some(live));
}

async fn a_second_start_while_live_is_an_active_stream_conflict(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let other = user(&store, "other").await;
    let live = go_live(&store, caster.id, "First").await;
    let refused = Uuid::now_v7();
    assert!(matches!(
        store.start_stream(refused, caster.id, "Second", None).await,
        Err(StoreError::Conflict(Conflict::ActiveStream))
    ));
    assert_eq!(store.stream(refused).await.unwrap(), None);
    assert_eq!(
        store.stream(live.id).await.unwrap().unwrap().status,
        StreamStatus::Live
    );
    // Other users are not affected, and after the end the caster may start again.
    go_live(&store, other.id, "Elsewhere").await;
    store.end_stream(caster.id).await.unwrap();
    go_live(&store, caster.id, "Second").await;
}

async fn concurrent_starts_leave_one_live_stream(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .start_stream(Uuid::now_v7(), caster.id, "Race", None)
                    .await
            })
        })
        .collect();
    let (mut started, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => started += 1,
            Err(StoreError::Conflict(Conflict::ActiveStream)) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((started, refused), (1, 3));
}

async fn end_stream_ends_the_live_broadcast_once(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let live = go_live(&store, caster.id, "Marathon").await;
    let ended = store.end_stream(caster.id).await.unwrap();
    assert_eq!((ended.id, ended.status), (live.id, StreamStatus::Ended));
    assert_eq!(
        (ended.title, ended.started_at),
        (live.title, live.started_at)
    );
    let ended_at = ended.ended_at.expect("ended_at is set");
    assert!(ended_at >= live.started_at);
    assert_eq!(
        store.stream(live.id).await.unwrap().unwrap().ended_at,
        Some(ended_at)
    );

    assert!(matches!(
        store.end_stream(caster.id).await,
        Err(StoreError::NotFound)
    ));
    let idle = user(&store, "idle").await;
    for never_live in [idle.id, Uuid::now_v7()] {
        assert!(matches!(
            store.end_stream(never_live).await,
            Err(StoreError::NotFound)
        ));
    }
}

async fn stream_patch_sets_keeps_and_clears(store: Arc<dyn Store>) {
    let caster = user(&store, "editor").await;
    let stream = store
        .start_stream(Uuid::now_v7(), caster.id, "Old", Some("Art"))
        .await
        .unwrap();
    let patch = |title: Option<&str>, category: Option<Option<&str>>| StreamPatch {
        title: title.map(|t| StreamTitle::parse(t).unwrap()),
        category: category.map(|c| c.map(|c| Category::parse(c).unwrap())),
    };
    let shown = |s: StreamView| (s.title, s.category);

    let retitled = store
        .update_stream(stream.id, patch(Some("New"), None))
        .await
        .unwrap();
    assert_eq!(shown(retitled.clone()), ("New".into(), Some("Art".into())));
    assert_eq!(
        (retitled.status, retitled.started_at),
        (stream.status, stream.started_at)
    );

    let cleared = store
        .update_stream(stream.id, patch(None, Some(None)))
        .await
        .unwrap();
    assert_eq!(shown(cleared), ("New".into(), None));
    let set = store
        .update_stream(stream.id, patch(None, Some(Some("Music"))))
        .await
        .unwrap();
    assert_eq!(shown(set), ("New".into(), Some("Music".into())));
    let unchanged = store
        .update_stream(stream.id, StreamPatch::default())
        .await
        .unwrap();
    assert_eq!(
        shown(unchanged.clone()),
        ("New".into(), Some("Music".into()))
    );
    assert_eq!(store.stream(stream.id).await.unwrap(), Some(unchanged));

    // An ended broadcast can still be edited.
    store.end_stream(caster.id).await.unwrap();
    let after_end = store
        .update_stream(stream.id, patch(Some("Replay"), None))
        .await
        .unwrap();
    assert_eq!(
        (after_end.title.as_str(), after_end.status),
        ("Replay", StreamStatus::Ended)
    );

    let unknown = Uuid::now_v7();
    assert!(matches!(
        store.update_stream(unknown, patch(Some("X"), None)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.stream(unknown).await.unwrap(), None);
}

async fn live_list_shows_only_live_streams_newest_first_in_pages(store: Arc<dyn Store>) {
    let casters = users(&store, "live", 5).await;
    let mut live = Vec::new();
    for (i, caster) in casters.iter().enumerate() {
        // Interleave broadcasts in other states.
        if i == 2 {
            let quitter = user(&store, "quitter").await;
            past_stream(&store, quitter.id, "over").await;
            let dropped = user(&store, "dropped").await;
            let session = Uuid::now_v7();
            store
                .attach_publisher(dropped.id, session, Uuid::now_v7(), None, None)
                .await
                .unwrap();
            assert!(store.detach_publisher(session).await.unwrap());
        }
        live.push(go_live(&store, caster.id, "show").await);
    }
    live.reverse();

    let walked = pages(2, |limit, after| {
        store.list_streams(StreamStatus::Live, StreamSort::Started, limit, after)
    })
    .await;
    assert_eq!(sizes(&walked), [2, 2, 1]);
    assert_eq!(
        flat(&walked, |s| s.id),
        ids(&live),
        "most recently started first"
    );
    assert!(
        walked
            .iter()
            .flatten()
            .all(|s| s.status == StreamStatus::Live)
    );
    let first_row = &walked[0][0];
    assert_eq!(first_row, &live[0], "rows carry the joined owner");

    let offline = store
        .list_streams(
            StreamStatus::Offline,
            StreamSort::Started,
            Default::default(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        flat(&[offline.items], |s| s.owner.username.clone()),
        ["dropped"]
    );
}

async fn live_list_by_viewers_pages_most_watched_first(store: Arc<dyn Store>) {
    let casters = users(&store, "ranked", 6).await;
    let mut live = Vec::new();
    for caster in &casters {
        live.push(go_live(&store, caster.id, "show").await);
    }
    let quitter = user(&store, "quitter").await;
    let over = past_stream(&store, quitter.id, "over").await;
    // Two share a count (ties go to the higher id); an ended broadcast's count is ignored.
    let counts = [(0, 40), (1, 7), (2, 300), (3, 7), (4, 0), (5, 41)];
    let mut updates: Vec<_> = counts
        .iter()
        .map(|&(i, n)| ViewerCountUpdate {
            stream_id: live[i].id,
            concurrent: n,
            unique: n,
        })
        .collect();
    updates.push(ViewerCountUpdate {
        stream_id: over.id,
        concurrent: 1_000,
        unique: 1_000,
    });
    store.record_viewer_counts(&updates).await.unwrap();

    let walked = pages(2, |limit, after| {
        store.list_streams(StreamStatus::Live, StreamSort::Viewers, limit, after)
    })
    .await;
    assert_eq!(sizes(&walked), [2, 2, 2]);
    let tied = if live[1].id > live[3].id {
        [1, 3]
    } else {
        [3, 1]
    };
    let expected: Vec<Uuid> = [2, 5, 0, tied[0], tied[1], 4]
        .iter()
        .map(|&i| live[i].id)
        .collect();
    assert_eq!(flat(&walked, |s| s.id), expected);
    assert_eq!(
        flat(&walked, |s| s.viewer_count),
        [300, 41, 40, 7, 7, 0],
        "most watched first"
    );

    // A cursor from the time-ordered list does not page the audience-ordered one.
    let one = Limit::new(Some(1)).unwrap();
    let by_time = store
        .list_streams(StreamStatus::Live, StreamSort::Started, one, None)
        .await
        .unwrap();
    let foreign = store
        .list_streams(
            StreamStatus::Live,
            StreamSort::Viewers,
            one,
            by_time.next_cursor,
        )
        .await;
    assert!(
        matches!(foreign, Err(StoreError::ForeignCursor)),
        "{foreign:?}"
    );
}

async fn ended_list_and_user_streams_paginate(store: Arc<dyn Store>) {
    let [quitter, other] = [user(&store, "quitter").await, user(&store, "other").await];
    let mut mine = Vec::new();
    for title in ["first", "second", "third"] {
        mine.push(past_stream(&store, quitter.id, title).await);
    }
    let theirs = past_stream(&store, other.id, "theirs").await;
    let current = go_live(&store, quitter.id, "now").await;

    let ended = pages(2, |limit, after| {
        store.list_streams(StreamStatus::Ended, StreamSort::Started, limit, after)
    })
    .await;
    assert_eq!(sizes(&ended), [2, 2]);
    let mut expected = vec![theirs.id, mine[2].id, mine[1].id, mine[0].id];
    assert_eq!(flat(&ended, |s| s.id), expected);
    assert!(ended.iter().flatten().all(|s| s.ended_at.is_some()));

    // A user's broadcasts: every state, only theirs.
    expected = vec![current.id, mine[2].id, mine[1].id, mine[0].id];
    let walked = pages(1, |limit, after| {
        store.user_streams(quitter.id, limit, after)
    })
    .await;
    assert_eq!(sizes(&walked), [1, 1, 1, 1]);
    assert_eq!(flat(&walked, |s| s.id), expected);
    let nobody = store
        .user_streams(Uuid::now_v7(), Default::default(), None)
        .await
        .unwrap();
    assert!(nobody.items.is_empty() && nobody.next_cursor.is_none());
}

async fn publishers_attach_detach_resume_and_are_swept(store: Arc<dyn Store>) {
    let caster = user(&store, "publisher").await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let (stream, resumed) = store
        .attach_publisher(caster.id, first, Uuid::now_v7(), None, None)
        .await
        .unwrap();
    assert!(!resumed);
    assert_eq!(stream.status, StreamStatus::Live);
    assert_eq!(stream.title, "publisher is live");
    // The same publisher again is a no-op; another one is refused.
    assert_eq!(
        store
            .attach_publisher(caster.id, first, Uuid::now_v7(), None, None)
            .await
            .unwrap()
            .0
            .id,
        stream.id
    );
    let taken = store
        .attach_publisher(caster.id, second, Uuid::now_v7(), None, None)
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
        .attach_publisher(caster.id, second, Uuid::now_v7(), None, None)
        .await
        .unwrap();
    assert!(resumed);
    assert_eq!((again.id, again.status), (stream.id, StreamStatus::Live));

    // Gone for good: the sweep ends offline broadcasts older than the cutoff only.
    store.detach_publisher(second).await.unwrap();
    let past = from_now(-Duration::seconds(60));
    assert!(store.end_abandoned_streams(past).await.unwrap().is_empty());
    let future = from_now(Duration::seconds(1));
    assert_eq!(
        store.end_abandoned_streams(future).await.unwrap(),
        [caster.id]
    );
    assert_eq!(
        store.stream(stream.id).await.unwrap().unwrap().status,
        StreamStatus::Ended
    );

    // A new broadcast is titled like the previous one.
    let third = Uuid::now_v7();
    let (next, resumed) = store
        .attach_publisher(caster.id, third, Uuid::now_v7(), None, None)
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
            .attach_publisher(Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), None, None)
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn a_lapsed_ingest_lease_takes_the_broadcast_offline(store: Arc<dyn Store>) {
    let (leased, hooked) = (user(&store, "leased").await, user(&store, "hooked").await);
    let (session, other) = (Uuid::now_v7(), Uuid::now_v7());
    let soon = from_now(Duration::seconds(10));
    let (stream, _) = store
        .attach_publisher(leased.id, session, Uuid::now_v7(), None, Some(soon))
        .await
        .unwrap();
    // An external media server's publish holds no lease.
    store
        .attach_publisher(hooked.id, other, Uuid::now_v7(), None, None)
        .await
        .unwrap();
    // Renewed while the publish runs; only by its own publisher.
    let later = from_now(Duration::seconds(20));
    assert!(store.renew_publisher_lease(session, later).await.unwrap());
    assert!(
        !store
            .renew_publisher_lease(Uuid::now_v7(), later)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .expire_publisher_leases(from_now(Duration::seconds(15)))
            .await
            .unwrap(),
        Vec::<Uuid>::new()
    );
    // The ingest node died: past the lease, the broadcast goes offline as of its end…
    let owners = store
        .expire_publisher_leases(from_now(Duration::seconds(25)))
        .await
        .unwrap();
    assert_eq!(owners, [leased.id]);
    let offline = store.stream(stream.id).await.unwrap().unwrap();
    assert_eq!(offline.status, StreamStatus::Offline);
    assert!(!offline.publishing);
    // …its node, back, cannot renew it, and a new publish may take the broadcast over…
    assert!(!store.renew_publisher_lease(session, later).await.unwrap());
    let (resumed, continued) = store
        .attach_publisher(leased.id, Uuid::now_v7(), Uuid::now_v7(), None, Some(later))
        .await
        .unwrap();
    assert_eq!((resumed.id, continued), (stream.id, true));
    // …and the lease-less broadcast stayed live throughout.
    let far = from_now(Duration::days(365));
    assert_eq!(
        store.expire_publisher_leases(far).await.unwrap(),
        [leased.id]
    );
    let hooked = store
        .user_streams(hooked.id, Limit::default(), None)
        .await
        .unwrap();
    assert_eq!(hooked.items[0].status, StreamStatus::Live);
}
