use std::sync::Arc;

use chrono::Duration;
use onair_store::{RefreshRotation, Store, Timestamp};
use uuid::Uuid;

use crate::support::{from_now, user};

onair_store::backend_tests!(crate::support::on_store =>
    rotation_spends_the_token_and_issues_its_replacement,
    replaying_a_spent_token_revokes_its_whole_family,
    reuse_in_one_family_leaves_other_logins_alone,
    unknown_and_expired_tokens_are_invalid,
    logout_revokes_the_current_token_of_the_family_only,
    concurrent_presentations_of_one_token_rotate_it_once,
    a_session_cannot_be_refreshed_past_its_absolute_lifetime,
);

fn in_a_week() -> Timestamp {
    from_now(Duration::days(7))
}

/// Sessions started before this have expired (the default absolute lifetime).
fn a_month_ago() -> Timestamp {
    from_now(-Duration::days(30))
}

/// A new login: the first token of a new family.
async fn login(store: &Arc<dyn Store>, user_id: Uuid, token: &[u8]) {
    store
        .insert_refresh_token(user_id, token, in_a_week())
        .await
        .unwrap();
}

async fn rotate(store: &Arc<dyn Store>, presented: &[u8], replacement: &[u8]) -> RefreshRotation {
    store
        .rotate_refresh_token(presented, replacement, in_a_week(), a_month_ago())
        .await
        .unwrap()
}

/// `token` no longer refreshes (spent, revoked, expired or never issued).
async fn assert_unusable(store: &Arc<dyn Store>, token: &[u8]) {
    let outcome = rotate(store, token, Uuid::now_v7().as_bytes()).await;
    assert!(
        matches!(outcome, RefreshRotation::Reused | RefreshRotation::Invalid),
        "{}: {outcome:?}",
        String::from_utf8_lossy(token)
    );
}

async fn rotation_spends_the_token_and_issues_its_replacement(store: Arc<dyn Store>) {
    let dana = user(&store, "dana").await;
    login(&store, dana.id, b"first").await;
    let rotated = RefreshRotation::Rotated { user_id: dana.id };
    assert_eq!(rotate(&store, b"first", b"second").await, rotated);
    assert_eq!(rotate(&store, b"second", b"third").await, rotated);
    assert_eq!(rotate(&store, b"third", b"fourth").await, rotated);
}

async fn replaying_a_spent_token_revokes_its_whole_family(store: Arc<dyn Store>) {
    let dana = user(&store, "dana").await;
    login(&store, dana.id, b"first").await;
    assert_eq!(
        rotate(&store, b"first", b"second").await,
        RefreshRotation::Rotated { user_id: dana.id }
    );

    assert_eq!(
        rotate(&store, b"first", b"stolen").await,
        RefreshRotation::Reused
    );
    // The family's newest token, held by the legitimate client, is revoked too,
    // and the replay did not issue a token.
    assert_unusable(&store, b"second").await;
    assert_unusable(&store, b"stolen").await;
    // Replaying again is still reuse.
    assert_eq!(
        rotate(&store, b"first", b"stolen-2").await,
        RefreshRotation::Reused
    );
}

async fn reuse_in_one_family_leaves_other_logins_alone(store: Arc<dyn Store>) {
    let dana = user(&store, "dana").await;
    let erin = user(&store, "erin").await;
    login(&store, dana.id, b"laptop").await;
    login(&store, dana.id, b"phone").await;
    login(&store, erin.id, b"erin").await;

    rotate(&store, b"laptop", b"laptop-2").await;
    assert_eq!(
        rotate(&store, b"laptop", b"x").await,
        RefreshRotation::Reused
    );
    assert_unusable(&store, b"laptop-2").await;

    assert_eq!(
        rotate(&store, b"phone", b"phone-2").await,
        RefreshRotation::Rotated { user_id: dana.id }
    );
    assert_eq!(
        rotate(&store, b"erin", b"erin-2").await,
        RefreshRotation::Rotated { user_id: erin.id }
    );
}

async fn unknown_and_expired_tokens_are_invalid(store: Arc<dyn Store>) {
    let frank = user(&store, "frank").await;
    assert_eq!(
        rotate(&store, b"never-issued", b"new").await,
        RefreshRotation::Invalid
    );
    // An invalid presentation stores no replacement.
    assert_eq!(
        rotate(&store, b"new", b"newer").await,
        RefreshRotation::Invalid
    );

    store
        .insert_refresh_token(frank.id, b"stale", from_now(-Duration::seconds(1)))
        .await
        .unwrap();
    // Expired is not spent: presenting it twice is invalid, not reuse.
    for _ in 0..2 {
        assert_eq!(
            rotate(&store, b"stale", b"fresh").await,
            RefreshRotation::Invalid
        );
    }
    assert_unusable(&store, b"fresh").await;
}

async fn logout_revokes_the_current_token_of_the_family_only(store: Arc<dyn Store>) {
    let gina = user(&store, "gina").await;
    login(&store, gina.id, b"first").await;
    login(&store, gina.id, b"elsewhere").await;
    rotate(&store, b"first", b"second").await;
    rotate(&store, b"second", b"current").await;

    // Logging out with any token of the family (here an old one) ends the login.
    store.revoke_refresh_family(b"first").await.unwrap();
    assert_unusable(&store, b"current").await;
    assert_eq!(
        rotate(&store, b"elsewhere", b"elsewhere-2").await,
        RefreshRotation::Rotated { user_id: gina.id }
    );

    login(&store, gina.id, b"fresh-login").await;
    store.revoke_refresh_family(b"fresh-login").await.unwrap();
    assert_unusable(&store, b"fresh-login").await;
    // Unknown tokens are ignored.
    store.revoke_refresh_family(b"never-issued").await.unwrap();
}

async fn concurrent_presentations_of_one_token_rotate_it_once(store: Arc<dyn Store>) {
    let hana = user(&store, "hana").await;
    login(&store, hana.id, b"shared").await;
    let attempts: Vec<_> = [b"copy-a", b"copy-b"]
        .into_iter()
        .map(|replacement| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { rotate(&store, b"shared", replacement).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    let rotated = RefreshRotation::Rotated { user_id: hana.id };
    assert_eq!(
        outcomes.iter().filter(|o| **o == rotated).count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&RefreshRotation::Reused), "{outcomes:?}");
    // The loser's presentation was a replay: the winner's replacement is revoked.
    assert_unusable(&store, b"copy-a").await;
    assert_unusable(&store, b"copy-b").await;
}

async fn a_session_cannot_be_refreshed_past_its_absolute_lifetime(store: Arc<dyn Store>) {
    let ivy = user(&store, "ivy").await;
    login(&store, ivy.id, b"first").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let after_login = Timestamp::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let rotated = RefreshRotation::Rotated { user_id: ivy.id };
    assert_eq!(rotate(&store, b"first", b"second").await, rotated);
    // The replacement carries the login's start, not its own.
    let expired = store
        .rotate_refresh_token(b"second", b"third", in_a_week(), after_login)
        .await
        .unwrap();
    assert_eq!(expired, RefreshRotation::SessionExpired);
    // Refused, not spent: it is not reuse, and a later login is a new session.
    assert_eq!(rotate(&store, b"second", b"third").await, rotated);
    login(&store, ivy.id, b"again").await;
    let fresh = store
        .rotate_refresh_token(b"again", b"again-2", in_a_week(), after_login)
        .await
        .unwrap();
    assert_eq!(fresh, rotated);
}
