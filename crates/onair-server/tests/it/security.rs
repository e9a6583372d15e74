//! The security review's findings: each hole, shown closed over HTTP.

use onair_store::DbConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestApp, assert_error};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    invisible_formatting_is_refused_but_emoji_joiners_stay,
);

async fn invisible_formatting_is_refused_but_emoji_joiners_stay(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let signup = app
        .post(
            "/api/auth/signup",
            None,
            json!({"username": "adm\u{202E}in", "email": "a@example.com", "password": "correct horse battery"}),
        )
        .await;
    assert_error(&signup, 422, "validation_failed");
    assert_eq!(signup.1["error"]["field"], "username", "{}", signup.1);
    assert!(
        signup.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invisible formatting"),
        "{}",
        signup.1
    );

    let dev = app.signup("dev").await;
    let patch = |body| {
        app.request(
            Method::PATCH,
            "/api/users/me",
            Some(&dev.access),
            Some(body),
        )
    };
    let refused = patch(json!({"display_name": "Dev\u{200B}"})).await;
    assert_error(&refused, 422, "validation_failed");
    assert_eq!(refused.1["error"]["field"], "display_name");
    let (status, body) = patch(json!({"display_name": "Dev 👩\u{200D}💻"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["display_name"], "Dev 👩\u{200D}💻");
}
