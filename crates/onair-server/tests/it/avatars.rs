//! Avatar uploads: pictures made by a real ffmpeg, re-encoded by the server to a
//! 256 × 256 WebP, served from this origin, replaced and removed; bad uploads refused.

use std::process::{Command, Stdio};

use onair_store::DbConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::media::ensure_ffmpeg;
use crate::support::{TestApp, User, assert_error, read};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    uploads_are_squared_served_replaced_and_removed,
    avatars_live_in_a_shared_object_store,
    bad_uploads_are_refused_and_change_nothing,
);

const AVATAR: &str = "/api/users/me/avatar";

/// One frame of ffmpeg's test pattern at `size`, encoded by `codec` (`png`, `mjpeg`).
fn picture(size: &str, codec: &str) -> Vec<u8> {
    ensure_ffmpeg();
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
        .args(["-i", &format!("testsrc=size={size}"), "-frames:v", "1"])
        .args(["-c:v", codec, "-f", "image2pipe", "pipe:1"])
        .stderr(Stdio::inherit())
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success() && !output.stdout.is_empty());
    output.stdout
}

/// `(codec, width, height)` of a picture, as ffprobe reads it.
fn probe(picture: &[u8]) -> (String, u32, u32) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), picture).unwrap();
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(file.path())
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<&str> = text.trim().split(',').collect();
    let [codec, width, height] = fields[..] else {
        panic!("ffprobe: {text}")
    };
    (
        codec.into(),
        width.parse().unwrap(),
        height.parse().unwrap(),
    )
}

async fn upload(
    app: &TestApp,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = app.client.put(app.url(AVATAR)).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    read(request.send().await.unwrap()).await
}

/// Uploads `body` as `user`'s avatar and returns the new `avatar_url`.
async fn set_avatar(app: &TestApp, user: &User, content_type: &str, body: Vec<u8>) -> String {
    let (status, profile) = upload(app, Some(&user.access), Some(content_type), body).await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_eq!(profile["id"], user.id.as_str());
    let url = profile["avatar_url"].as_str().expect("an avatar_url");
    let prefix = format!("/media/avatars/{}/", user.id);
    let file = url.strip_prefix(&prefix).unwrap_or_else(|| panic!("{url}"));
    let hash = file
        .strip_suffix(".webp")
        .unwrap_or_else(|| panic!("{url}"));
    assert!(
        hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{url}"
    );
    url.to_owned()
}

/// Fetches a served avatar, checks its headers and shape, and returns its bytes.
async fn fetch_avatar(app: &TestApp, url: &str) -> Vec<u8> {
    let response = app.client.get(app.url(url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "image/webp");
    assert_eq!(
        header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    let bytes = response.bytes().await.unwrap().to_vec();
    assert_eq!(probe(&bytes), ("webp".into(), 256, 256));
    bytes
}

async fn assert_gone(app: &TestApp, url: &str) {
    assert_error(&app.get(url).await, 404, "not_found");
}

async fn uploads_are_squared_served_replaced_and_removed(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let ada = app.signup("ada_pics").await;
    let mut png = picture("640x480", "png");
    // Bytes after the image (a polyglot's payload) are not served back.
    png.extend_from_slice(b"<script>alert(1)</script>");
    let first = set_avatar(&app, &ada, "image/png", png).await;
    let served = fetch_avatar(&app, &first).await;
    assert!(!served.windows(8).any(|w| w == b"<script>"));
    let (_, profile) = app.get(&format!("/api/users/{}", ada.id)).await;
    assert_eq!(profile["avatar_url"], first.as_str());

    // A tall JPEG: center-cropped to the same square. The old picture goes away.
    let second = set_avatar(&app, &ada, "image/jpeg", picture("300x900", "mjpeg")).await;
    assert_ne!(second, first);
    fetch_avatar(&app, &second).await;
    assert_gone(&app, &first).await;

    // Its own output is a valid upload too (WebP in).
    let again = fetch_avatar(&app, &second).await;
    let third = set_avatar(&app, &ada, "image/webp", again).await;
    fetch_avatar(&app, &third).await;

    // Pointing the profile elsewhere also lets the stored picture go.
    let elsewhere = json!({"avatar_url": "https://cdn.example/ada.png"});
    let (status, profile) = app
        .request(
            Method::PATCH,
            "/api/users/me",
            Some(&ada.access),
            Some(elsewhere),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_gone(&app, &third).await;

    let fourth = set_avatar(&app, &ada, "image/png", picture("200x100", "png")).await;
    let (status, profile) = app
        .request(Method::DELETE, AVATAR, Some(&ada.access), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_eq!(profile["avatar_url"], Value::Null);
    assert_gone(&app, &fourth).await;
    let (_, me) = app.get_as("/api/users/me", &ada.access).await;
    assert_eq!(me["avatar_url"], Value::Null);
    // Removing none is fine.
    let (status, _) = app
        .request(Method::DELETE, AVATAR, Some(&ada.access), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn avatars_live_in_a_shared_object_store(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        config.media.object_store_url = Some("memory:///shared".into());
        config.media.rtmp_enabled = false;
    })
    .await;
    let bo = app.signup("bo_pics").await;
    let url = set_avatar(&app, &bo, "image/png", picture("256x256", "png")).await;
    fetch_avatar(&app, &url).await;
    app.request(Method::DELETE, AVATAR, Some(&bo.access), None)
        .await;
    assert_gone(&app, &url).await;
}

async fn bad_uploads_are_refused_and_change_nothing(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let cy = app.signup("cy_pics").await;
    let kept = set_avatar(&app, &cy, "image/png", picture("320x240", "png")).await;
    let token = Some(cy.access.as_str());

    let oversize = vec![0u8; 2 * 1024 * 1024 + 1];
    assert_error(
        &upload(&app, token, Some("image/png"), oversize).await,
        413,
        "payload_too_large",
    );
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    for content_type in ["image/png", "image/jpeg", "image/webp"] {
        assert_error(
            &upload(&app, token, Some(content_type), garbage.clone()).await,
            422,
            "unsupported_image",
        );
    }
    // A real picture of another type than declared is not decoded as what it is.
    assert_error(
        &upload(&app, token, Some("image/jpeg"), picture("64x64", "png")).await,
        422,
        "unsupported_image",
    );
    assert_error(
        &upload(&app, token, Some("image/png"), Vec::new()).await,
        422,
        "unsupported_image",
    );
    for content_type in [
        Some("image/gif"),
        Some("image/svg+xml"),
        Some("text/plain"),
        None,
    ] {
        assert_error(
            &upload(&app, token, content_type, picture("64x64", "png")).await,
            415,
            "unsupported_media_type",
        );
    }
    let (_, me) = app.get_as("/api/users/me", &cy.access).await;
    assert_eq!(me["avatar_url"], kept.as_str(), "refusals change nothing");
    fetch_avatar(&app, &kept).await;

    let png = picture("64x64", "png");
    assert_error(
        &upload(&app, None, Some("image/png"), png).await,
        401,
        "unauthorized",
    );
    assert_error(
        &app.request(Method::DELETE, AVATAR, None, None).await,
        401,
        "unauthorized",
    );

    let avatars = format!("/media/avatars/{}", cy.id);
    for file in [
        "0123456789abcdef0123456789abcdef.webp",
        "not-a-hash.webp",
        "..%2F..%2Fonair.db",
    ] {
        assert_gone(&app, &format!("{avatars}/{file}")).await;
    }
    assert_error(
        &app.get("/media/avatars/not-a-uuid/0123456789abcdef0123456789abcdef.webp")
            .await,
        400,
        "invalid_path",
    );
}
