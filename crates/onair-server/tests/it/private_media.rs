//! A private archive's media: served with the token its owner is given, to nobody else.

use onair_store::DbConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::archives::{archive_of, archived, end, fetch, publish, put, send, with_media_dir};
use crate::support::TestApp;

onair_store::backend_tests!(onair_store::testing::with_backend =>
    a_private_archives_media_opens_with_its_token_only,
);

/// `relative` (a URI in the playlist at `base`, a path with a query) as a path.
fn resolve(app: &TestApp, base: &str, relative: &str) -> String {
    let url = reqwest::Url::parse(&app.url(base))
        .unwrap()
        .join(relative)
        .unwrap();
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

/// The URI lines of a playlist.
fn uris(playlist: &str) -> Vec<&str> {
    let lines = playlist.lines();
    lines
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

async fn a_private_archives_media_opens_with_its_token_only(db: DbConfig) {
    let (media, app) = with_media_dir(db, false).await;
    let creator = app.signup("secretive").await;
    let stream_id = publish(&app, &creator).await;
    let live = format!("live/{stream_id}");
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nsource/recording.m3u8\n";
    let rendition = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:1.000,\nseg_00000.ts\n";
    for (file, body) in [
        ("recording.m3u8", master),
        ("source/recording.m3u8", rendition),
        ("source/seg_00000.ts", "ts"),
        ("preview.jpg", "jpeg"),
    ] {
        put(media.path(), &format!("{live}/{file}"), body.as_bytes());
    }
    end(&app, &creator).await;
    let archive = archive_of(&app, &creator, stream_id).await;
    let id = archive["id"].as_str().unwrap();
    let version = Uuid::now_v7();
    let vod = format!("vod/{id}/{version}");
    for (file, body) in [
        (
            "master.m3u8",
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/index.m3u8\n",
        ),
        (
            "720p/index.m3u8",
            "#EXTM3U\n#EXTINF:4.0,\nseg_00000.ts\n#EXT-X-ENDLIST\n",
        ),
        ("720p/seg_00000.ts", "ts"),
        ("thumbnail.jpg", "jpeg"),
    ] {
        put(media.path(), &format!("{vod}/{file}"), body.as_bytes());
    }
    let every_file = [
        format!("/{live}/recording.m3u8"),
        format!("/{live}/source/recording.m3u8"),
        format!("/{live}/source/seg_00000.ts"),
        format!("/{live}/preview.jpg"),
        format!("/{vod}/master.m3u8"),
        format!("/{vod}/720p/index.m3u8"),
        format!("/{vod}/720p/seg_00000.ts"),
        format!("/{vod}/thumbnail.jpg"),
    ];
    // Public: no token, anyone reads it all.
    assert_eq!(archive["playlist_url"], format!("/{live}/recording.m3u8"));
    for file in &every_file {
        assert_eq!(fetch(&app, file).await.0, StatusCode::OK, "{file}");
    }

    let path = format!("/api/archives/{id}");
    let private = Some(json!({"visibility": "private"}));
    let (_, archive) = send(&app, Method::PATCH, &path, Some(&creator), private).await;
    let playlist_url = archive["playlist_url"].as_str().unwrap().to_owned();
    let (bare, token) = playlist_url.split_once("?token=").expect("a tokenized URL");
    assert_eq!(bare, format!("/{live}/recording.m3u8"));
    let (_, listed) = app
        .get_as(
            &format!("/api/users/{}/archives", creator.id),
            &creator.access,
        )
        .await;
    assert_eq!(listed["data"][0]["playlist_url"], playlist_url);
    // Without the token, or with a forged one, nothing of it exists (at once: the node
    // that changed the visibility forgets what it knew).
    let forged = format!("{}.{}", token.split('.').next().unwrap(), "A".repeat(22));
    for file in &every_file {
        assert_eq!(fetch(&app, file).await.0, StatusCode::NOT_FOUND, "{file}");
        let with_forged = format!("{file}?token={forged}");
        assert_eq!(
            fetch(&app, &with_forged).await.0,
            StatusCode::NOT_FOUND,
            "{file}"
        );
    }
    // With it: the player follows the playlists, which carry the token to every URI.
    let (status, _, cache, body) = fetch(&app, &playlist_url).await;
    assert_eq!(
        (status, cache.as_str()),
        (StatusCode::OK, "private, max-age=3600")
    );
    assert_eq!(
        uris(&body),
        [format!("source/recording.m3u8?token={token}")]
    );
    let rendition_url = resolve(&app, &playlist_url, uris(&body)[0]);
    let (status, _, _, body) = fetch(&app, &rendition_url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.ends_with("#EXT-X-ENDLIST\n"), "closed: {body}");
    let segment_url = resolve(&app, &rendition_url, uris(&body)[0]);
    let (status, content_type, cache, body) = fetch(&app, &segment_url).await;
    assert_eq!(
        (status, content_type.as_str(), body.as_str()),
        (StatusCode::OK, "video/mp2t", "ts")
    );
    assert_eq!(cache, "private, max-age=3600", "kept out of shared caches");
    // The token opens the archive's VOD too, and only this archive's.
    let vod_master = format!("/{vod}/master.m3u8?token={token}");
    let (status, _, _, body) = fetch(&app, &vod_master).await;
    assert_eq!(status, StatusCode::OK);
    let index = resolve(&app, &vod_master, uris(&body)[0]);
    let (status, _, _, body) = fetch(&app, &index).await;
    assert_eq!(
        (status, uris(&body)),
        (
            StatusCode::OK,
            vec![format!("seg_00000.ts?token={token}").as_str()]
        )
    );
    let neighbour = app.signup("neighbour").await;
    let other = archived(&app, &neighbour).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let private = Some(json!({"visibility": "private"}));
    let other_path = format!("/api/archives/{other}");
    send(&app, Method::PATCH, &other_path, Some(&neighbour), private).await;
    let other_vod = format!("vod/{other}/{version}/master.m3u8");
    put(media.path(), &other_vod, b"#EXTM3U\n");
    let (status, _, _, _) = fetch(&app, &format!("/{other_vod}?token={token}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another archive's token");

    // Public again: open to all; deleted: gone at once, before its objects are removed.
    let public = Some(json!({"visibility": "public"}));
    send(&app, Method::PATCH, &path, Some(&creator), public).await;
    for file in &every_file {
        assert_eq!(fetch(&app, file).await.0, StatusCode::OK, "{file}");
    }
    send(&app, Method::DELETE, &path, Some(&creator), None).await;
    for file in &every_file {
        assert_eq!(fetch(&app, file).await.0, StatusCode::NOT_FOUND, "{file}");
    }
}
