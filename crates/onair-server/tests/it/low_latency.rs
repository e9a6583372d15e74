//! LL-HLS end to end: a real ffmpeg publishes over RTMP; every rendition playlist lists
//! parts and hints the next, a blocking reload for a part not written yet returns once it
//! is (and may be cached by its query), the hinted part is served when written, and bad
//! blocking requests get clear errors. The media path does not depend on the database,
//! so this runs on the embedded backend only.

use onair_media::LiveEdge;
use onair_store::DbConfig;
use onair_store::testing::{TestBackend, with_backend};
use reqwest::StatusCode;
use serde_json::Value;

use crate::media::{broadcast_in, get_bytes, playable, publish, stream_key};
use crate::support::TestApp;

#[tokio::test]
async fn parts_appear_and_a_blocking_reload_waits_for_its_part() {
    with_backend(TestBackend::Sqlite, parts_and_blocking_reloads).await;
}

async fn parts_and_blocking_reloads(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let creator = app.signup("low_latency").await;
    let mut publisher = publish(&app, &stream_key(&app, &creator).await);
    let live = broadcast_in(&app, &creator, "live").await;
    let stream_id = live["id"].as_str().unwrap();
    let renditions = playable(&app, stream_id).await;

    for rendition in &renditions {
        let url = format!("/live/{stream_id}/{rendition}");
        let (status, headers, playlist) = get_bytes(&app, &url).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["cache-control"], "no-cache");
        let playlist = String::from_utf8(playlist).unwrap();
        for tag in [
            "#EXT-X-PART-INF:PART-TARGET=0.33",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=",
            "#EXT-X-MAP:URI=\"init_00000_",
            ",INDEPENDENT=YES\n",
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part_",
        ] {
            assert!(playlist.contains(tag), "{tag} in {playlist}");
        }
        let edge = LiveEdge::of(&playlist);
        assert!(edge.growing(), "{playlist}");

        // The part after the last one listed: held until the playlist lists it.
        let (msn, part) = (edge.open_segment, edge.open_parts);
        assert!(!edge.has(msn, Some(part)));
        let blocking = format!("{url}?_HLS_msn={msn}&_HLS_part={part}");
        let (status, headers, newer) = get_bytes(&app, &blocking).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&newer)
        );
        assert_eq!(headers["cache-control"], "public, max-age=6");
        let newer = String::from_utf8(newer).unwrap();
        assert!(LiveEdge::of(&newer).has(msn, Some(part)), "{newer}");

        // The hinted part is served once written, as an immutable CMAF segment.
        let hinted = newer
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap();
        let directory = rendition.trim_end_matches("index.m3u8");
        let (status, headers, bytes) =
            get_bytes(&app, &format!("/live/{stream_id}/{directory}{hinted}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "video/iso.segment");
        assert_eq!(&bytes[4..8], b"moof", "a CMAF fragment");
    }

    // Bad blocking requests: a part without its segment, a segment far ahead, a part
    // never hinted.
    let url = format!("/live/{stream_id}/{}", renditions[0]);
    let (_, _, playlist) = get_bytes(&app, &url).await;
    let edge = LiveEdge::of(&String::from_utf8(playlist).unwrap());
    let far = edge.open_segment + 3;
    for (query, reason) in [
        ("_HLS_part=1", "needs _HLS_msn"),
        (&format!("_HLS_msn={far}")[..], "too far"),
    ] {
        let (status, _, body) = get_bytes(&app, &format!("{url}?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "invalid_query");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(reason),
            "{body}"
        );
    }
    let never = url.replace("index.m3u8", "part_99999_00000.m4s");
    assert_eq!(get_bytes(&app, &never).await.0, StatusCode::NOT_FOUND);

    // Once the publisher leaves, the playlists stop growing: a blocking reload answers at
    // once with what there is, parts gone.
    publisher.kill().await.unwrap();
    broadcast_in(&app, &creator, "offline").await;
    let (status, _, ended) = get_bytes(&app, &format!("{url}?_HLS_msn={far}")).await;
    let ended = String::from_utf8(ended).unwrap();
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert!(
        !ended.contains("#EXT-X-PART:") && !ended.contains("PRELOAD-HINT"),
        "{ended}"
    );
}
