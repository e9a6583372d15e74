use chrono::{Duration, Utc};
use onair_store::{RefreshRotation, Timestamp};

use crate::support::{each_store, user};

fn in_days(days: i64) -> Timestamp {
    Timestamp::from(Utc::now() + Duration::days(days))
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

        let rotated = store
            .rotate_refresh_token(b"first", b"second", in_days(7))
            .await
            .unwrap();
        assert_eq!(rotated, RefreshRotation::Rotated { user_id: dana.id });
        // Replaying the spent token revokes its family, including the newest token.
        assert_eq!(
            store
                .rotate_refresh_token(b"first", b"third", in_days(7))
                .await
                .unwrap(),
            RefreshRotation::Reused
        );
        assert_ne!(
            store
                .rotate_refresh_token(b"second", b"fourth", in_days(7))
                .await
                .unwrap(),
            RefreshRotation::Rotated { user_id: dana.id }
        );
        // Another login's family is untouched.
        assert_eq!(
            store
                .rotate_refresh_token(b"other-login", b"other-2", in_days(7))
                .await
                .unwrap(),
            RefreshRotation::Rotated { user_id: dana.id }
        );
        assert_eq!(
            store
                .rotate_refresh_token(b"unknown", b"x", in_days(7))
                .await
                .unwrap(),
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
            store
                .rotate_refresh_token(b"stale", b"new", in_days(7))
                .await
                .unwrap(),
            RefreshRotation::Invalid
        );

        store
            .insert_refresh_token(erin.id, b"session", in_days(7))
            .await
            .unwrap();
        store.revoke_refresh_family(b"session").await.unwrap();
        assert_ne!(
            store
                .rotate_refresh_token(b"session", b"new2", in_days(7))
                .await
                .unwrap(),
            RefreshRotation::Rotated { user_id: erin.id }
        );
        store.revoke_refresh_family(b"never-issued").await.unwrap();
    })
    .await;
}
