use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{assert_error, each_backend};

#[tokio::test]
async fn follow_unfollow_and_counts() {
    each_backend(|app| async move {
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
    })
    .await;
}

#[tokio::test]
async fn followers_are_keyset_paginated() {
    each_backend(|app| async move {
        let star = app.signup("popular").await;
        let mut fans = Vec::new();
        for i in 0..5 {
            let fan = app.signup(&format!("fan{i}")).await;
            let path = format!("/api/users/{}/follow", star.id);
            app.request(Method::POST, &path, Some(&fan.access), Some(json!({})))
                .await;
            fans.push(fan.username);
        }
        let path = format!("/api/users/{}/followers", star.id);
        let (items, pages) = app.collect_pages(&path, 2).await;
        assert_eq!(pages, 3);
        let names: Vec<&str> = items
            .iter()
            .map(|i| i["user"]["username"].as_str().unwrap())
            .collect();
        let newest_first: Vec<&str> = fans.iter().rev().map(String::as_str).collect();
        assert_eq!(names, newest_first);

        let (status, body): (StatusCode, Value) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["data"].as_array().unwrap().len(),
            5,
            "default limit is 20"
        );

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
    })
    .await;
}
