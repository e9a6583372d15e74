use chrono::{Duration, Utc};
use std::sync::Arc;

use onair_store::{RefreshRotation, Store, Timestamp};

use crate::support::{each_store, user};

fn in_days(days: i64) -> Timestamp {
    Timestamp::from(Utc::now() + Duration::days(days))
}

async fn rotate(store: &Arc<dyn Store>, presented: &[u8], replacement: &[u8]) -> RefreshRotation {
    store
        .rotate_refresh_token(presented, replacement, in_days(7))
        .await
        .unwrap()
}

#[tokio::test]
async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family() {
    each_store(|store| async move {
        let dana = user(&store, "dana").await;
        store
            .insert_refresh_token(dana.id, b"first", in_days(7))
            .await
            .unwrap();
        store
            .insert_refresh_token(dana.id, b"other-login", in_days(7))
            .await
            .unwrap();

        let rotated = rotate(&store, b"first", b"second").await;
        assert_eq!(rotated, RefreshRotation::Rotated { user_id: dana.id });
        // Replaying the spent token revokes its family, including the newest token.
        assert_eq!(
            rotate(&store, b"first", b"third").await,
            RefreshRotation::Reused
        );
        assert_ne!(
            rotate(&store, b"second", b"fourth").await,
            RefreshRotation::Rotated { user_id: dana.id }
        );
        // Another login's family is untouched.
        assert_eq!(
            rotate(&store, b"other-login", b"other-2").await,
            RefreshRotation::Rotated { user_id: dana.id }
        );
        assert_eq!(
            rotate(&store, b"unknown", b"x").await,
            RefreshRotation::Invalid
        );
    })
    .await;
}

#[tokio::test]
async fn expired_and_revoked_tokens_do_not_rotate() {
    each_store(|store| async move {
        let erin = user(&store, "erin").await;
        store
            .insert_refresh_token(erin.id, b"stale", in_days(-1))
            .await
            .unwrap();
        assert_eq!(
            rotate(&store, b"stale", b"new").await,
            RefreshRotation::Invalid
        );

        store
            .insert_refresh_token(erin.id, b"session", in_days(7))
            .await
            .unwrap();
        store.revoke_refresh_family(b"session").await.unwrap();
        assert_ne!(
            rotate(&store, b"session", b"new2").await,
            RefreshRotation::Rotated { user_id: erin.id }
        );
        store.revoke_refresh_family(b"never-issued").await.unwrap();
    })
    .await;
}
