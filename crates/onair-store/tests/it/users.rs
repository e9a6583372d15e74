use onair_core::{AvatarUrl, Bio, DisplayName};
use onair_store::{Conflict, ProfilePatch, StoreError};
use uuid::Uuid;

use crate::support::{each_store, new_user, user};

#[tokio::test]
async fn users_are_unique_by_username_and_email() {
    each_store(|store| async move {
        let alice = user(&store, "alice").await;
        assert_eq!(alice.username, "alice");
        assert_eq!((alice.follower_count, alice.following_count), (0, 0));
        assert_eq!(alice.live_stream_id, None);

        let mut same_name = new_user("alice");
        same_name.email = onair_core::Email::parse("other@example.com").unwrap();
        assert!(matches!(
            store.create_user(same_name).await,
            Err(StoreError::Conflict(Conflict::Username))
        ));
        let mut same_email = new_user("alicia");
        same_email.email = onair_core::Email::parse("alice@example.com").unwrap();
        assert!(matches!(
            store.create_user(same_email).await,
            Err(StoreError::Conflict(Conflict::Email))
        ));
    })
    .await;
}

#[tokio::test]
async fn credentials_by_username_or_email() {
    each_store(|store| async move {
        let bob = user(&store, "bob").await;
        for login in ["bob", "bob@example.com"] {
            let found = store.credentials(login).await.unwrap().expect(login);
            assert_eq!(found.id, bob.id);
            assert!(found.password_hash.starts_with("$argon2id$"));
        }
        assert!(store.credentials("nobody").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn profile_patches_set_keep_and_clear() {
    each_store(|store| async move {
        let carol = user(&store, "carol").await;
        let patch = ProfilePatch {
            display_name: Some(Some(DisplayName::parse("Carol").unwrap())),
            bio: Some(Bio::parse("hello").unwrap()),
            avatar_url: Some(Some(AvatarUrl::parse("https://cdn.example/c.png").unwrap())),
        };
        let updated = store.update_profile(carol.id, patch).await.unwrap();
        assert_eq!(updated.display_name.as_deref(), Some("Carol"));
        assert_eq!(updated.bio, "hello");

        let cleared = store
            .update_profile(
                carol.id,
                ProfilePatch {
                    avatar_url: Some(None),
                    ..ProfilePatch::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(cleared.avatar_url, None);
        assert_eq!(
            cleared.display_name.as_deref(),
            Some("Carol"),
            "absent fields stay"
        );
        assert_eq!(store.profile(carol.id).await.unwrap(), Some(cleared));

        assert!(matches!(
            store
                .update_profile(Uuid::now_v7(), ProfilePatch::default())
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(store.profile(Uuid::now_v7()).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn health_and_pool_stats() {
    each_store(|store| async move {
        store.ping().await.unwrap();
        let pools = store.pool_stats();
        assert!(!pools.is_empty());
        assert!(pools.iter().all(|p| p.idle <= p.size));
    })
    .await;
}
