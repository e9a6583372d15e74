use onair_store::DbConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, User, assert_error};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    follow_unfollow_and_counts,
    followers_are_keyset_paginated,
);

async fn follow_unfollow_and_counts(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let star = app.signup("star").await;
    let fan = app.signup("fan").await;
    let follow_path = format!("/api/users/{}/follow", star.id);
    for _ in 0..2 {
        let (status, _) = app
            .request(Method::POST, &follow_path, Some(&fan.access), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "follow is idempotent");
    }
    let (_, profile) = app
        .get_as(&format!("/api/users/{}", star.id), &fan.access)
        .await;
    assert_eq!(profile["follower_count"], 1);
    assert_eq!(profile["followed_by_you"], true);
    let (_, fan_profile) = app.get(&format!("/api/users/{}", fan.id)).await;
    assert_eq!(fan_profile["following_count"], 1);

    let (_, following) = app.get(&format!("/api/users/{}/following", fan.id)).await;
    assert_eq!(following["data"][0]["user"]["username"], "star");

    for _ in 0..2 {
        let (status, _) = app
            .request(Method::DELETE, &follow_path, Some(&fan.access), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "unfollow is idempotent");
    }
    let (_, profile) = app.get(&format!("/api/users/{}", star.id)).await;
    assert_eq!(profile["follower_count"], 0);

    let own = format!("/api/users/{}/follow", fan.id);
    assert_error(
        &app.request(Method::POST, &own, Some(&fan.access), None)
            .await,
        422,
        "cannot_follow_self",
    );
    let ghost = "/api/users/01900000-0000-7000-8000-000000000000/follow";
    assert_error(
        &app.request(Method::POST, ghost, Some(&fan.access), None)
            .await,
        404,
        "not_found",
    );
    assert_error(
        &app.request(Method::POST, &follow_path, None, None).await,
        401,
        "unauthorized",
    );
}

/// Signs up users `fan{i}` for each `i` in `range`, each following `star`, in order;
/// returns their usernames.
async fn fans_of(app: &TestApp, star: &User, range: std::ops::Range<usize>) -> Vec<String> {
    let mut fans = Vec::new();
    for i in range {
        let fan = app.signup(&format!("fan{i}")).await;
        let path = format!("/api/users/{}/follow", star.id);
        let (status, body) = app
            .request(Method::POST, &path, Some(&fan.access), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        fans.push(fan.username);
    }
    fans
}

fn usernames(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|i| i["user"]["username"].as_str().unwrap())
        .collect()
}

async fn followers_are_keyset_paginated(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let star = app.signup("popular").await;
    let mut fans = fans_of(&app, &star, 0..5).await;
    let path = format!("/api/users/{}/followers", star.id);
    let (items, pages) = app.collect_pages(&path, 2).await;
    assert_eq!(pages, 3);
    let newest_first: Vec<&str> = fans.iter().rev().map(String::as_str).collect();
    assert_eq!(usernames(&items), newest_first);

    // Without `limit` a page holds 20 rows: with 23 followers, the first page has 20
    // and a cursor to the 3 others.
    fans.extend(fans_of(&app, &star, 5..23).await);
    let newest_first: Vec<&str> = fans.iter().rev().map(String::as_str).collect();
    let (status, first): (StatusCode, Value) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    let first_rows = first["data"].as_array().unwrap();
    assert_eq!(first_rows.len(), 20, "the default limit is 20");
    assert_eq!(first["pagination"]["has_more"], true, "{first}");
    let cursor = first["pagination"]["next_cursor"]
        .as_str()
        .expect("a cursor");
    let (status, rest) = app.get(&format!("{path}?cursor={cursor}")).await;
    assert_eq!(status, StatusCode::OK);
    let rest_rows = rest["data"].as_array().unwrap();
    assert_eq!(rest["pagination"]["next_cursor"], Value::Null, "{rest}");
    assert_eq!(rest["pagination"]["has_more"], false, "{rest}");
    let walked = [usernames(first_rows), usernames(rest_rows)].concat();
    assert_eq!(walked, newest_first);

    assert_error(
        &app.get(&format!("{path}?cursor=bm90LWEtY3Vyc29y")).await,
        400,
        "invalid_cursor",
    );
    assert_error(
        &app.get(&format!("{path}?cursor=!!")).await,
        400,
        "invalid_cursor",
    );
    assert_error(
        &app.get(&format!("{path}?limit=101")).await,
        400,
        "invalid_limit",
    );
    assert_error(
        &app.get(&format!("{path}?limit=0")).await,
        400,
        "invalid_limit",
    );
    assert_error(
        &app.get(&format!("{path}?limit=ten")).await,
        400,
        "invalid_query",
    );
    assert_error(
        &app.get(&format!("{path}?page=2")).await,
        400,
        "invalid_query",
    );
}
