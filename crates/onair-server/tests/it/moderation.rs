//! The lists behind the creator's moderation tools: a channel's moderators and who may
//! not talk in it, for its owner and moderators only.

use onair_store::DbConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, User, assert_error};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    owner_and_moderators_list_the_moderators,
    bans_list_bans_and_running_timeouts,
    only_the_owner_and_moderators_read_the_lists,
);

async fn as_user(app: &TestApp, method: Method, path: &str, user: &User, body: Option<Value>) {
    let (status, body) = app.request(method, path, Some(&user.access), body).await;
    assert_eq!(status, 204, "{path}: {body}");
}

async fn appoint(app: &TestApp, owner: &User, moderator: &User) {
    let path = format!("/api/channels/{}/moderators/{}", owner.id, moderator.id);
    as_user(app, Method::PUT, &path, owner, None).await;
}

/// Every item of a list, following its cursors `limit` at a time, as `reader`.
async fn all_pages(app: &TestApp, path: &str, reader: &User, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = format!("{path}?limit={limit}{cursor}");
        let (status, body) = app.get_as(&url, &reader.access).await;
        assert_eq!(status, 200, "{body}");
        items.extend(body["data"].as_array().unwrap().iter().cloned());
        match body["pagination"]["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return items,
        }
    }
}

fn usernames(items: &[Value], user: impl Fn(&Value) -> &Value) -> Vec<String> {
    items
        .iter()
        .map(|item| user(item)["username"].as_str().unwrap().to_owned())
        .collect()
}

async fn owner_and_moderators_list_the_moderators(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let owner = app.signup("roster_owner").await;
    let mut moderators = Vec::new();
    for name in ["mod_a", "mod_b", "mod_c"] {
        let moderator = app.signup(name).await;
        appoint(&app, &owner, &moderator).await;
        moderators.push(moderator);
    }
    let path = format!("/api/channels/{}/moderators", owner.id);
    for reader in [&owner, &moderators[0]] {
        let listed = all_pages(&app, &path, reader, 2).await;
        assert_eq!(usernames(&listed, |m| m), ["mod_c", "mod_b", "mod_a"]);
        let first = &listed[0];
        assert_eq!(first["id"], moderators[2].id.as_str());
        assert!(first.get("display_name").is_some() && first.get("avatar_url").is_some());
    }

    let removed = format!("{path}/{}", moderators[1].id);
    as_user(&app, Method::DELETE, &removed, &owner, None).await;
    let listed = all_pages(&app, &path, &owner, 20).await;
    assert_eq!(usernames(&listed, |m| m), ["mod_c", "mod_a"]);
    // A former moderator lost access with the role.
    assert_error(
        &app.get_as(&path, &moderators[1].access).await,
        403,
        "forbidden",
    );
}

async fn bans_list_bans_and_running_timeouts(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let owner = app.signup("bans_owner").await;
    let moderator = app.signup("bans_mod").await;
    appoint(&app, &owner, &moderator).await;
    let path = format!("/api/channels/{}/bans", owner.id);
    let (troll, spammer, forgiven, brief) = (
        app.signup("troll_1").await,
        app.signup("spammer_1").await,
        app.signup("forgiven_1").await,
        app.signup("brief_1").await,
    );
    for body in [
        json!({"user_id": troll.id, "reason": "trolling"}),
        json!({"user_id": spammer.id, "duration_secs": 600}),
        json!({"user_id": forgiven.id}),
        json!({"user_id": brief.id, "duration_secs": 1}),
    ] {
        as_user(&app, Method::POST, &path, &moderator, Some(body)).await;
    }
    as_user(
        &app,
        Method::DELETE,
        &format!("{path}/{}", forgiven.id),
        &owner,
        None,
    )
    .await;
    // The one-second timeout runs out.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;

    let listed = all_pages(&app, &path, &owner, 1).await;
    assert_eq!(usernames(&listed, |b| &b["user"]), ["spammer_1", "troll_1"]);
    let (timeout, banned) = (&listed[0], &listed[1]);
    assert_eq!(banned["until"], Value::Null);
    assert_eq!(banned["reason"], "trolling");
    assert_eq!(banned["user"]["id"], troll.id.as_str());
    let until = timeout["until"].as_str().expect("a timeout's end");
    let until = chrono::DateTime::parse_from_rfc3339(until).unwrap();
    let left = until.signed_duration_since(chrono::Utc::now());
    assert!(
        left.num_seconds() > 500 && left.num_seconds() <= 600,
        "{left}"
    );
    assert_eq!(timeout["reason"], Value::Null);
    for item in &listed {
        assert!(item["created_at"].is_string(), "{item}");
    }
    assert_eq!(all_pages(&app, &path, &moderator, 20).await, listed);
}

async fn only_the_owner_and_moderators_read_the_lists(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let owner = app.signup("private_owner").await;
    let viewer = app.signup("curious").await;
    let unknown = "01900000-0000-7000-8000-000000000000";
    for list in ["moderators", "bans"] {
        let path = format!("/api/channels/{}/{list}", owner.id);
        assert_error(&app.get(&path).await, 401, "unauthorized");
        assert_error(&app.get_as(&path, &viewer.access).await, 403, "forbidden");
        let elsewhere = format!("/api/channels/{unknown}/{list}");
        assert_error(
            &app.get_as(&elsewhere, &viewer.access).await,
            404,
            "not_found",
        );
        let bad = format!("{path}?cursor=forged.cursor");
        assert_error(
            &app.get_as(&bad, &owner.access).await,
            400,
            "invalid_cursor",
        );
        let (status, empty) = app.get_as(&path, &owner.access).await;
        assert_eq!(status, 200);
        assert_eq!(
            empty,
            json!({"data": [], "pagination": {"next_cursor": null, "has_more": false}})
        );
    }
}
