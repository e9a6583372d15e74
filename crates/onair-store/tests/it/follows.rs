use std::sync::Arc;

use onair_store::{Store, StoreError};
use uuid::Uuid;

use crate::support::{flat, pages, profile, sizes, user, users};

onair_store::backend_tests!(crate::support::on_store =>
    follow_is_idempotent_and_counted_once,
    unfollow_is_idempotent_and_restores_the_counters,
    following_an_unknown_user_is_not_found,
    followers_pages_list_each_follower_once_newest_first,
    following_pages_mirror_the_followers_lists,
    concurrent_follows_and_unfollows_keep_the_counters_exact,
);

/// (follower_count, following_count) of a user.
async fn counts(store: &Arc<dyn Store>, id: Uuid) -> (i64, i64) {
    let p = profile(store, id).await;
    (p.follower_count, p.following_count)
}

async fn follow_is_idempotent_and_counted_once(store: Arc<dyn Store>) {
    let star = user(&store, "star").await;
    let fan = user(&store, "fan").await;
    assert!(store.follow(fan.id, star.id).await.unwrap());
    assert!(
        !store.follow(fan.id, star.id).await.unwrap(),
        "already following"
    );

    assert!(store.is_following(fan.id, star.id).await.unwrap());
    assert!(!store.is_following(star.id, fan.id).await.unwrap());
    assert_eq!(counts(&store, star.id).await, (1, 0));
    assert_eq!(counts(&store, fan.id).await, (0, 1));
}

async fn unfollow_is_idempotent_and_restores_the_counters(store: Arc<dyn Store>) {
    let star = user(&store, "star").await;
    let fan = user(&store, "fan").await;
    let other = user(&store, "other").await;
    store.follow(fan.id, star.id).await.unwrap();
    store.follow(other.id, star.id).await.unwrap();

    assert!(store.unfollow(fan.id, star.id).await.unwrap());
    assert!(
        !store.unfollow(fan.id, star.id).await.unwrap(),
        "already gone"
    );
    assert!(!store.is_following(fan.id, star.id).await.unwrap());
    assert_eq!(counts(&store, star.id).await, (1, 0), "other still follows");
    assert_eq!(counts(&store, fan.id).await, (0, 0));
    // Never followed: nothing to remove.
    assert!(!store.unfollow(star.id, fan.id).await.unwrap());
    assert_eq!(counts(&store, star.id).await, (1, 0));

    // Following again counts again.
    assert!(store.follow(fan.id, star.id).await.unwrap());
    assert_eq!(counts(&store, star.id).await, (2, 0));
}

async fn following_an_unknown_user_is_not_found(store: Arc<dyn Store>) {
    let fan = user(&store, "fan").await;
    let ghost = Uuid::now_v7();
    for (follower, followed) in [(fan.id, ghost), (ghost, fan.id)] {
        assert!(matches!(
            store.follow(follower, followed).await,
            Err(StoreError::NotFound)
        ));
    }
    assert_eq!(counts(&store, fan.id).await, (0, 0));
    assert!(!store.unfollow(fan.id, ghost).await.unwrap());
}

async fn followers_pages_list_each_follower_once_newest_first(store: Arc<dyn Store>) {
    let star = user(&store, "idol").await;
    let fans = users(&store, "fan", 7).await;
    for fan in &fans {
        assert!(store.follow(fan.id, star.id).await.unwrap());
    }
    // Someone following someone else is not in the list.
    store.follow(fans[0].id, fans[1].id).await.unwrap();
    let newest_first: Vec<Uuid> = fans.iter().rev().map(|f| f.id).collect();

    let walked = pages(3, |limit, after| store.followers(star.id, limit, after)).await;
    assert_eq!(sizes(&walked), [3, 3, 1]);
    assert_eq!(flat(&walked, |f| f.user.id), newest_first);
    let followed_at = flat(&walked, |f| f.followed_at);
    assert!(followed_at.is_sorted_by(|a, b| a >= b), "{followed_at:?}");
    assert_eq!(walked[0][0].user.username, "fan6");

    // A page exactly as long as the list announces no next one.
    let exact = pages(7, |limit, after| store.followers(star.id, limit, after)).await;
    assert_eq!(sizes(&exact), [7]);
    assert_eq!(profile(&store, star.id).await.follower_count, 7);
}

async fn following_pages_mirror_the_followers_lists(store: Arc<dyn Store>) {
    let fan = user(&store, "fan").await;
    let stars = users(&store, "star", 7).await;
    for star in &stars {
        store.follow(fan.id, star.id).await.unwrap();
    }
    store.follow(stars[0].id, stars[1].id).await.unwrap();

    let walked = pages(3, |limit, after| store.following(fan.id, limit, after)).await;
    assert_eq!(sizes(&walked), [3, 3, 1]);
    let newest_first: Vec<Uuid> = stars.iter().rev().map(|s| s.id).collect();
    assert_eq!(flat(&walked, |f| f.user.id), newest_first);
    assert_eq!(profile(&store, fan.id).await.following_count, 7);

    // Each follow appears on the other side with the same time.
    for entry in walked.iter().flatten() {
        let theirs = store
            .followers(entry.user.id, Default::default(), None)
            .await
            .unwrap();
        let back = theirs.items.iter().find(|f| f.user.id == fan.id).unwrap();
        assert_eq!(back.followed_at, entry.followed_at);
        assert_eq!(back.user.username, "fan");
    }
    let nobody = store
        .following(stars[2].id, Default::default(), None)
        .await
        .unwrap();
    assert!(nobody.items.is_empty() && nobody.next_cursor.is_none());
}

/// Runs every (follower, followed) change at once; returns how many changed something.
async fn all_at_once(store: &Arc<dyn Store>, pairs: &[(Uuid, Uuid)], follow: bool) -> usize {
    let tasks: Vec<_> = pairs
        .iter()
        .map(|&(follower, followed)| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let changed = if follow {
                    store.follow(follower, followed).await
                } else {
                    store.unfollow(follower, followed).await
                };
                changed.expect("no deadlock, no error")
            })
        })
        .collect();
    let mut changed = 0;
    for task in tasks {
        changed += usize::from(task.await.unwrap());
    }
    changed
}

async fn concurrent_follows_and_unfollows_keep_the_counters_exact(store: Arc<dyn Store>) {
    let star = user(&store, "star").await;
    let fans = users(&store, "fan", 6).await;
    // Every fan and the star follow each other, all at once, and the first fan
    // twice: mutual follows are where two transactions lock the same two users.
    let mut pairs: Vec<(Uuid, Uuid)> = fans
        .iter()
        .flat_map(|fan| [(fan.id, star.id), (star.id, fan.id)])
        .collect();
    pairs.push((fans[0].id, star.id));
    for round in 0..3 {
        assert_eq!(all_at_once(&store, &pairs, true).await, 12, "round {round}");
        assert_eq!(counts(&store, star.id).await, (6, 6));
        for fan in &fans {
            assert_eq!(counts(&store, fan.id).await, (1, 1), "{}", fan.username);
        }
        assert_eq!(
            all_at_once(&store, &pairs, false).await,
            12,
            "round {round}"
        );
        assert_eq!(counts(&store, star.id).await, (0, 0));
        assert_eq!(counts(&store, fans[0].id).await, (0, 0));
    }
}
