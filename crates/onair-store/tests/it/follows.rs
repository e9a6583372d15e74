use onair_core::Limit;
use std::sync::Arc;

use onair_store::{Store, StoreError};
use uuid::Uuid;

use crate::support::{each_store, user};

/// (followers of `star`, accounts `fan` follows).
async fn counts(store: &Arc<dyn Store>, star: Uuid, fan: Uuid) -> (i64, i64) {
    let profile = |id| async move { store.profile(id).await.unwrap().expect("user exists") };
    (
        profile(star).await.follower_count,
        profile(fan).await.following_count,
    )
}

#[tokio::test]
async fn follows_are_idempotent_and_counted_once() {
    each_store(|store| async move {
        let star = user(&store, "star").await;
        let fan = user(&store, "fan").await;
        assert!(store.follow(fan.id, star.id).await.unwrap());
        assert!(
            !store.follow(fan.id, star.id).await.unwrap(),
            "already following"
        );
        assert!(store.is_following(fan.id, star.id).await.unwrap());
        assert!(!store.is_following(star.id, fan.id).await.unwrap());
        assert_eq!(counts(&store, star.id, fan.id).await, (1, 1));

        assert!(store.unfollow(fan.id, star.id).await.unwrap());
        assert!(!store.unfollow(fan.id, star.id).await.unwrap());
        assert_eq!(counts(&store, star.id, fan.id).await, (0, 0));

        assert!(matches!(
            store.follow(fan.id, Uuid::now_v7()).await,
            Err(StoreError::NotFound)
        ));
    })
    .await;
}

#[tokio::test]
async fn follower_and_following_pages_walk_every_row_once() {
    each_store(|store| async move {
        let star = user(&store, "idol").await;
        let mut fans = Vec::new();
        for i in 0..7 {
            let fan = user(&store, &format!("fan{i}")).await;
            store.follow(fan.id, star.id).await.unwrap();
            fans.push(fan.id);
        }
        let limit = Limit::new(Some(3)).unwrap();
        let (mut seen, mut cursor, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = store.followers(star.id, limit, cursor).await.unwrap();
            pages += 1;
            seen.extend(page.items.iter().map(|f| f.user.id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        fans.reverse();
        assert_eq!(seen, fans, "newest first, each once");

        let following = store
            .following(fans[0], Limit::default(), None)
            .await
            .unwrap();
        assert_eq!(following.items.len(), 1);
        assert_eq!(following.items[0].user.username, "idol");
        assert_eq!(following.next_cursor, None);
    })
    .await;
}
