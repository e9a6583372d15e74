use std::sync::Arc;

use chrono::Duration;
use onair_core::{AvatarUrl, Bio, DisplayName};
use onair_store::{
    Conflict, ProfilePatch, RefreshRotation, Store, StoreError, Timestamp, UserProfile,
};
use uuid::Uuid;

use crate::support::{from_now, go_live, new_user, new_user_with_email, profile, user};

onair_store::backend_tests!(crate::support::on_store =>
    create_user_returns_the_new_profile,
    duplicate_username_or_email_is_a_conflict,
    credentials_by_username_or_email,
    profile_patch_sets_keeps_and_clears,
    unknown_user_has_no_profile_and_cannot_be_updated,
    live_stream_id_is_set_only_while_live,
    signup_stores_the_user_and_its_session_together,
    signup_with_a_taken_username_or_email_stores_neither_user_nor_session,
    signup_whose_session_cannot_be_stored_leaves_no_user,
);

async fn create_user_returns_the_new_profile(store: Arc<dyn Store>) {
    let new = new_user("alice");
    let (id, created_at) = (new.id, new.created_at);
    let alice = store.create_user(new).await.unwrap();
    assert_eq!(
        alice,
        UserProfile {
            id,
            username: "alice".into(),
            display_name: None,
            bio: String::new(),
            avatar_url: None,
            follower_count: 0,
            following_count: 0,
            live_stream_id: None,
            record_broadcasts: true,
            created_at,
        }
    );
    assert_eq!(store.profile(id).await.unwrap(), Some(alice));
}

async fn duplicate_username_or_email_is_a_conflict(store: Arc<dyn Store>) {
    user(&store, "alice").await;

    // Usernames are stored lower-case, so case does not make a new one.
    let same_name = new_user_with_email("Alice", "other@example.com");
    assert!(matches!(
        store.create_user(same_name).await,
        Err(StoreError::Conflict(Conflict::Username))
    ));
    let same_email = new_user_with_email("alicia", "alice@example.com");
    assert!(matches!(
        store.create_user(same_email).await,
        Err(StoreError::Conflict(Conflict::Email))
    ));
    // Neither refused account was stored.
    for login in ["alicia", "other@example.com"] {
        assert!(store.credentials(login).await.unwrap().is_none(), "{login}");
    }
}

async fn credentials_by_username_or_email(store: Arc<dyn Store>) {
    let bob = user(&store, "bob").await;
    user(&store, "bobby").await;
    for login in ["bob", "bob@example.com"] {
        let found = store.credentials(login).await.unwrap().expect(login);
        assert_eq!(found.id, bob.id, "{login}");
        assert_eq!(found.password_hash, new_user("bob").password_hash);
    }
    for unknown in ["nobody", "nobody@example.com", "bo", ""] {
        assert!(
            store.credentials(unknown).await.unwrap().is_none(),
            "{unknown:?}"
        );
    }
}

async fn profile_patch_sets_keeps_and_clears(store: Arc<dyn Store>) {
    let carol = user(&store, "carol").await;
    let set = store
        .update_profile(
            carol.id,
            ProfilePatch {
                display_name: Some(Some(DisplayName::parse("Carol").unwrap())),
                bio: Some(Bio::parse("hello\nworld").unwrap()),
                avatar_url: Some(Some(AvatarUrl::parse("https://cdn.example/c.png").unwrap())),
                record_broadcasts: Some(false),
            },
        )
        .await
        .unwrap();
    assert_eq!(set.display_name.as_deref(), Some("Carol"));
    assert_eq!(set.bio, "hello\nworld");
    assert_eq!(set.avatar_url.as_deref(), Some("https://cdn.example/c.png"));
    assert!(!set.record_broadcasts);
    assert_eq!((set.id, set.username.as_str()), (carol.id, "carol"));

    // An empty patch changes nothing.
    let kept = store
        .update_profile(carol.id, ProfilePatch::default())
        .await
        .unwrap();
    assert_eq!(kept, set);

    // Some(None) clears; an absent field (bio) stays.
    let cleared = store
        .update_profile(
            carol.id,
            ProfilePatch {
                display_name: Some(None),
                avatar_url: Some(None),
                bio: None,
                record_broadcasts: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((cleared.display_name, cleared.avatar_url), (None, None));
    assert_eq!(cleared.bio, "hello\nworld");
    assert!(!cleared.record_broadcasts, "an absent setting stays");

    // The bio is set (here emptied) on its own.
    let rewritten = store
        .update_profile(
            carol.id,
            ProfilePatch {
                bio: Some(Bio::parse("").unwrap()),
                ..ProfilePatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rewritten.bio, "");
    assert_eq!(rewritten.display_name, None);
    assert_eq!(store.profile(carol.id).await.unwrap(), Some(rewritten));
}

async fn unknown_user_has_no_profile_and_cannot_be_updated(store: Arc<dyn Store>) {
    user(&store, "dave").await;
    let unknown = Uuid::now_v7();
    assert_eq!(store.profile(unknown).await.unwrap(), None);
    let patch = ProfilePatch {
        bio: Some(Bio::parse("ghost").unwrap()),
        ..ProfilePatch::default()
    };
    assert!(matches!(
        store.update_profile(unknown, patch).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.update_profile(unknown, ProfilePatch::default()).await,
        Err(StoreError::NotFound)
    ));
}

async fn live_stream_id_is_set_only_while_live(store: Arc<dyn Store>) {
    let caster = user(&store, "caster").await;
    let viewer = user(&store, "viewer").await;
    let live = go_live(&store, caster.id, "Speedrun").await;
    assert_eq!(
        profile(&store, caster.id).await.live_stream_id,
        Some(live.id)
    );
    assert_eq!(profile(&store, viewer.id).await.live_stream_id, None);
    // Every read of a profile carries it, including the one an update returns.
    let updated = store
        .update_profile(caster.id, ProfilePatch::default())
        .await
        .unwrap();
    assert_eq!(updated.live_stream_id, Some(live.id));

    store.end_stream(caster.id).await.unwrap();
    assert_eq!(profile(&store, caster.id).await.live_stream_id, None);

    let next = go_live(&store, caster.id, "Again").await;
    assert_eq!(
        profile(&store, caster.id).await.live_stream_id,
        Some(next.id)
    );
}

fn in_a_week() -> Timestamp {
    from_now(Duration::days(7))
}

async fn signup_stores_the_user_and_its_session_together(store: Arc<dyn Store>) {
    let new = new_user("dora");
    let id = new.id;
    let dora = store
        .create_user_with_session(new, b"dora-first", in_a_week())
        .await
        .unwrap();
    assert_eq!(dora.id, id);
    assert_eq!(dora.username, "dora");
    assert_eq!(store.profile(id).await.unwrap(), Some(dora));
    // The session's refresh token was stored with the user: it rotates.
    let rotated = store
        .rotate_refresh_token(
            b"dora-first",
            b"dora-second",
            in_a_week(),
            from_now(-Duration::days(30)),
        )
        .await
        .unwrap();
    assert_eq!(rotated, RefreshRotation::Rotated { user_id: id });
}

async fn signup_with_a_taken_username_or_email_stores_neither_user_nor_session(
    store: Arc<dyn Store>,
) {
    user(&store, "erin").await;
    let taken = [
        (
            new_user_with_email("Erin", "other@example.com"),
            Conflict::Username,
        ),
        (
            new_user_with_email("erika", "erin@example.com"),
            Conflict::Email,
        ),
    ];
    for (new, conflict) in taken {
        let outcome = store
            .create_user_with_session(new, b"refused", in_a_week())
            .await;
        assert!(
            matches!(outcome, Err(StoreError::Conflict(c)) if c == conflict),
            "{conflict:?}: {outcome:?}"
        );
    }
    for login in ["erika", "other@example.com"] {
        assert!(store.credentials(login).await.unwrap().is_none(), "{login}");
    }
    // No session row: the token is unknown.
    let outcome = store
        .rotate_refresh_token(
            b"refused",
            b"next",
            in_a_week(),
            from_now(-Duration::days(30)),
        )
        .await
        .unwrap();
    assert_eq!(outcome, RefreshRotation::Invalid);
}

async fn signup_whose_session_cannot_be_stored_leaves_no_user(store: Arc<dyn Store>) {
    let frank = user(&store, "frank").await;
    store
        .insert_refresh_token(frank.id, b"shared-hash", in_a_week())
        .await
        .unwrap();
    // The user row goes in first; the session's insert then fails, and the
    // transaction takes the user back out.
    let outcome = store
        .create_user_with_session(new_user("gina"), b"shared-hash", in_a_week())
        .await;
    assert!(
        matches!(outcome, Err(StoreError::Conflict(Conflict::Other))),
        "{outcome:?}"
    );
    assert!(store.credentials("gina").await.unwrap().is_none());
    // Frank's session is untouched.
    let rotated = store
        .rotate_refresh_token(
            b"shared-hash",
            b"frank-next",
            in_a_week(),
            from_now(-Duration::days(30)),
        )
        .await
        .unwrap();
    assert_eq!(rotated, RefreshRotation::Rotated { user_id: frank.id });
}
