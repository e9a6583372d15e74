//! Live media end to end: a real ffmpeg publishes a test pattern over RTMP, the server's
//! ingest transcodes it to HLS, and the broadcast moves through its lifecycle.

use std::process::Stdio;
use std::sync::Once;
use std::time::Duration;

use onair_infra::testing::MotoS3;
use onair_infra::{MediaStore, S3Options};
use onair_store::DbConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::notifications::store_of;
use crate::support::{DEADLINE, TestApp, User, eventually};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    obs_style_publish_becomes_adaptive_hls_and_ends,
    hls_is_published_through_the_object_store,
    #[s3] hls_is_published_to_s3,
    a_reconnect_within_the_window_continues_the_broadcast,
    a_reconnect_after_the_window_starts_a_new_broadcast,
    bad_publishers_are_refused_without_harm,
    a_crashed_transcoder_ends_the_broadcast_and_drops_the_publisher,
    ingests_beyond_the_node_cap_are_refused,
    rotating_the_key_cuts_off_its_publisher_and_frees_the_slot,
    ending_the_broadcast_cuts_off_its_publisher_on_any_node,
);

/// ffmpeg comes from Debian's packages; install it if this machine lacks it.
pub fn ensure_ffmpeg() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let present = std::process::Command::new("ffprobe").arg("-version").output().is_ok_and(|o| o.status.success());
        if !present {
            let status = std::process::Command::new("sh")
                .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg"])
                .status()
                .expect("run apt-get");
            assert!(status.success(), "installing ffmpeg failed");
        }
    });
}

/// Publishes a 640x360 test pattern with a tone, keyframe every second, in real time.
pub(crate) fn publish(app: &TestApp, key: &str) -> Child {
    publish_sized(app, key, "640x360")
}

/// Publishes a test pattern of `size` (`WxH`) over RTMP.
fn publish_sized(app: &TestApp, key: &str, size: &str) -> Child {
    let url = format!(
        "rtmp://{}/live/{key}",
        app.rtmp.expect("RTMP ingest enabled")
    );
    encoder(size, "flv", &url)
}

/// ffmpeg encoding a test pattern of `size` (`WxH`) with a tone, keyframe every second,
/// in real time, to `url` in `format`, as OBS does.
pub(crate) fn encoder(size: &str, format: &str, url: &str) -> Child {
    ensure_ffmpeg();
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate=30"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-f", format, url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs")
}

/// Media in the object store at `url` instead of the data directory.
pub(crate) fn use_store(config: &mut onair_server::Config, url: String, s3: S3Options) {
    config.media.object_store_url = Some(url);
    config.media.s3_endpoint = s3.endpoint;
    config.media.s3_region = s3.region;
    config.media.s3_access_key_id = s3.access_key_id;
    config.media.s3_secret_access_key = s3.secret_access_key;
    config.media.s3_allow_http = s3.allow_http;
}

pub(crate) async fn stream_key(app: &TestApp, user: &User) -> String {
    let (_, body) = app.get_as("/api/me/stream-key", &user.access).await;
    body["stream_key"].as_str().unwrap().to_owned()
}

/// The user's current broadcast once it reaches `status`.
pub(crate) async fn broadcast_in(app: &TestApp, user: &User, status: &str) -> Value {
    eventually(&format!("a broadcast {status}"), || async {
        let (_, page) = app
            .get(&format!("/api/users/{}/streams?limit=1", user.id))
            .await;
        let latest = page["data"].get(0)?.clone();
        (latest["status"] == status).then_some(latest)
    })
    .await
}

pub(crate) async fn get_bytes(
    app: &TestApp,
    path: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.bytes().await.unwrap().to_vec())
}

/// Waits until the master playlist and every rendition playlist are served with a
/// segment, and returns the rendition playlist URIs.
pub(crate) async fn playable(app: &TestApp, stream_id: &str) -> Vec<String> {
    eventually("a playable master playlist", || async {
        let (status, _, master) = get_bytes(app, &format!("/live/{stream_id}/master.m3u8")).await;
        if status != StatusCode::OK {
            return None;
        }
        let master = String::from_utf8(master).unwrap();
        let renditions: Vec<String> = master
            .lines()
            .filter(|l| l.ends_with(".m3u8"))
            .map(str::to_owned)
            .collect();
        if renditions.len() < 2 {
            return None;
        }
        for rendition in &renditions {
            let (_, _, playlist) = get_bytes(app, &format!("/live/{stream_id}/{rendition}")).await;
            if !String::from_utf8_lossy(&playlist).contains("#EXTINF") {
                return None;
            }
        }
        Some(renditions)
    })
    .await
}

/// A segment of each of a live broadcast's `renditions` (playlist URIs), behind its
/// initialization, decodes as H.264 of its height in `heights`, with audio; both are
/// served as immutable CMAF.
pub(crate) async fn renditions_decode(
    app: &TestApp,
    stream_id: &str,
    renditions: &[String],
    heights: &[u64],
) {
    for (rendition, height) in renditions.iter().zip(heights) {
        let (_, _, playlist) = get_bytes(app, &format!("/live/{stream_id}/{rendition}")).await;
        let playlist = String::from_utf8(playlist).unwrap();
        let segment = playlist.lines().find(|l| l.starts_with("seg_")).unwrap();
        let init = playlist
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap();
        let directory = rendition.trim_end_matches("index.m3u8");
        let mut bytes = Vec::new();
        for (file, content_type) in [(init, "video/mp4"), (segment, "video/iso.segment")] {
            let (status, headers, body) =
                get_bytes(app, &format!("/live/{stream_id}/{directory}{file}")).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers["content-type"], content_type);
            let cache_control = headers["cache-control"].to_str().unwrap();
            assert!(cache_control.contains("immutable"), "{cache_control}");
            bytes.extend_from_slice(&body);
        }
        let probe = ffprobe(&bytes, "stream=codec_type,codec_name,height", "json");
        let streams: Value = serde_json::from_slice(&probe).unwrap();
        let streams = streams["streams"].as_array().unwrap();
        assert!(
            streams
                .iter()
                .any(|s| s["codec_name"] == "h264" && s["height"] == *height),
            "{rendition}: {streams:?}"
        );
        assert!(
            streams.iter().any(|s| s["codec_type"] == "audio"),
            "{rendition}: {streams:?}"
        );
    }
}

/// ffprobe's `entries` of a media file's `bytes`, printed in `format`.
pub(crate) fn ffprobe(bytes: &[u8], entries: &str, format: &str) -> Vec<u8> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", entries, "-of", format])
        .arg(file.path())
        .output()
        .unwrap();
    output.stdout
}

/// Waits for the live broadcast's preview image and checks it: a JPEG 320 px wide,
/// cached no longer than it lasts. Returns its bytes.
async fn preview(app: &TestApp, live: &Value) -> Vec<u8> {
    let stream_id = live["id"].as_str().unwrap();
    let url = format!("/live/{stream_id}/preview.jpg");
    assert_eq!(live["preview_url"], url.as_str(), "{live}");
    let (headers, image) = eventually("a preview image", || async {
        let (status, headers, image) = get_bytes(app, &url).await;
        (status == StatusCode::OK).then_some((headers, image))
    })
    .await;
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(headers["cache-control"], "public, max-age=10");
    assert_eq!(image[..2], [0xFF, 0xD8], "JPEG magic");
    let size = ffprobe(&image, "stream=width,height", "csv=p=0");
    assert_eq!(String::from_utf8_lossy(&size).trim(), "320,180");
    image
}

async fn obs_style_publish_becomes_adaptive_hls_and_ends(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| config.media.reconnect_grace_secs = 1).await;
    let creator = app.signup("broadcaster").await;
    let key = stream_key(&app, &creator).await;
    let mut publisher = publish_sized(&app, &format!("{key}?obs=1"), "1280x720");

    let live = broadcast_in(&app, &creator, "live").await;
    let stream_id = live["id"].as_str().unwrap().to_owned();
    assert_eq!(live["title"], "broadcaster is live");
    let (_, list) = app.get("/api/streams").await;
    assert_eq!(list["data"][0]["id"], stream_id.as_str());

    // A 720p source: copied, and encoded at every rung below it (none above).
    let renditions = playable(&app, &stream_id).await;
    assert_eq!(
        renditions,
        ["source/index.m3u8", "480p/index.m3u8", "360p/index.m3u8"]
    );
    let first_preview = preview(&app, &live).await;
    // Replaced while the broadcast goes on (the test pattern's counter moves).
    eventually("a newer preview image", || async {
        let (_, _, image) = get_bytes(&app, &format!("/live/{stream_id}/preview.jpg")).await;
        (image[..2] == [0xFF, 0xD8] && image != first_preview).then_some(())
    })
    .await;
    let (status, headers, master) =
        get_bytes(&app, &format!("/live/{stream_id}/master.m3u8")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(headers["cache-control"], "no-cache");
    // Players label and pick qualities from these (RFC 8216 §4.3.4.2).
    let variants = match m3u8_rs::parse_playlist_res(&master) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(master)) => master.variants,
        other => panic!("not a master playlist: {other:?}"),
    };
    let heights: Vec<u64> = variants
        .iter()
        .map(|v| v.resolution.expect("RESOLUTION").height)
        .collect();
    assert_eq!(heights, [720, 480, 360]);
    for variant in &variants {
        let average = variant.average_bandwidth.expect("AVERAGE-BANDWIDTH");
        assert!(average > 0 && average <= variant.bandwidth, "{variant:?}");
        let codecs = variant.codecs.as_deref().expect("CODECS");
        assert!(
            codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"),
            "{variant:?}"
        );
        assert_eq!(variant.frame_rate, Some(30.0), "{variant:?}");
    }
    // The encoded rungs' bitrates fall with their size (the source's is the publisher's).
    assert!(
        variants[2].bandwidth < variants[1].bandwidth,
        "{variants:?}"
    );
    let cross_origin = app
        .client
        .get(app.url(&format!("/live/{stream_id}/master.m3u8")))
        .header("origin", "https://player.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_origin.headers()["access-control-allow-origin"], "*");

    renditions_decode(&app, &stream_id, &renditions, &heights).await;

    for bad in ["../master.m3u8", "source/.hidden.ts", "notes.txt"] {
        let (status, _, _) = get_bytes(&app, &format!("/live/{stream_id}/{bad}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
    }

    publisher.kill().await.unwrap();
    let ended = broadcast_in(&app, &creator, "ended").await;
    assert_eq!(ended["id"], stream_id.as_str());
    assert_eq!(ended["preview_url"], Value::Null);
    let (_, profile) = app.get(&format!("/api/users/{}", creator.id)).await;
    assert_eq!(profile["is_live"], false);
}

async fn hls_is_published_through_the_object_store(db: DbConfig) {
    // `memory://` is object_store's in-process store: the same path as S3, no network.
    hls_plays_from_the_store(db, "memory:///media".into(), S3Options::default(), None).await;
}

async fn hls_is_published_to_s3(db: DbConfig) {
    let moto = MotoS3::start().await;
    let bucket = moto.store("media");
    hls_plays_from_the_store(db, moto.url("media"), moto.options(), Some(bucket)).await;
}

/// A broadcast published with the media store at `url` plays over HTTP; with `bucket`
/// (the same store, seen from the test), its playlists and segments are there and what
/// the server serves is what the bucket holds.
async fn hls_plays_from_the_store(
    db: DbConfig,
    url: String,
    s3: S3Options,
    bucket: Option<MediaStore>,
) {
    let app = TestApp::spawn_configured(db, |config| use_store(config, url, s3)).await;
    let creator = app.signup("mirrored").await;
    let key = stream_key(&app, &creator).await;
    let mut publisher = publish(&app, &key);
    let live = broadcast_in(&app, &creator, "live").await;
    let stream_id = live["id"].as_str().unwrap();
    let renditions = playable(&app, stream_id).await;
    assert_eq!(renditions.len(), 2);
    preview(&app, &live).await;
    let Some(bucket) = bucket else { return };

    let prefix = format!("live/{stream_id}");
    let keys: Vec<String> = bucket
        .list(&prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|object| object.key)
        .collect();
    for playlist in ["master.m3u8".to_owned()].iter().chain(&renditions) {
        assert!(
            keys.contains(&format!("{prefix}/{playlist}")),
            "{playlist} in {keys:?}"
        );
    }
    let segment = keys
        .iter()
        .find(|k| k.ends_with(".m4s"))
        .unwrap_or_else(|| panic!("a segment in {keys:?}"));
    let (status, _, served) = get_bytes(&app, &format!("/{segment}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        bucket.get(segment).await.unwrap().as_deref(),
        Some(&served[..])
    );

    // Parts go with the publish (the segmenter removes them): none stays in the store.
    assert!(
        keys.iter().any(|k| k.contains("/part_")),
        "parts in {keys:?}"
    );
    publisher.kill().await.unwrap();
    eventually("the parts leave the store", || async {
        let objects = bucket.list(&prefix).await.unwrap();
        let parts = objects.iter().filter(|o| o.key.contains("/part_")).count();
        (parts == 0).then_some(())
    })
    .await;
}

async fn a_reconnect_within_the_window_continues_the_broadcast(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| config.media.reconnect_grace_secs = 30).await;
    let creator = app.signup("flaky").await;
    let key = stream_key(&app, &creator).await;
    let mut first = publish(&app, &key);
    let stream_id = broadcast_in(&app, &creator, "live").await["id"].clone();
    playable(&app, stream_id.as_str().unwrap()).await;
    first.kill().await.unwrap();
    broadcast_in(&app, &creator, "offline").await;

    let _second = publish(&app, &key);
    let resumed = broadcast_in(&app, &creator, "live").await;
    assert_eq!(resumed["id"], stream_id, "same broadcast after a reconnect");
    let path = format!("/live/{}/source/index.m3u8", stream_id.as_str().unwrap());
    eventually("a discontinuity in the playlist", || async {
        let (_, _, playlist) = get_bytes(&app, &path).await;
        String::from_utf8_lossy(&playlist)
            .contains("#EXT-X-DISCONTINUITY")
            .then_some(())
    })
    .await;
}

async fn a_reconnect_after_the_window_starts_a_new_broadcast(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| config.media.reconnect_grace_secs = 1).await;
    let creator = app.signup("returner").await;
    let key = stream_key(&app, &creator).await;
    let mut first = publish(&app, &key);
    let first_id = broadcast_in(&app, &creator, "live").await["id"].clone();
    first.kill().await.unwrap();
    broadcast_in(&app, &creator, "ended").await;

    let _second = publish(&app, &key);
    let second = broadcast_in(&app, &creator, "live").await;
    assert_ne!(second["id"], first_id);
}

async fn bad_publishers_are_refused_without_harm(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let creator = app.signup("guarded").await;
    let old_key = stream_key(&app, &creator).await;
    let (_, rotated) = app
        .post(
            "/api/me/stream-key/rotate",
            Some(&creator.access),
            json!({}),
        )
        .await;
    let key = rotated["stream_key"].as_str().unwrap().to_owned();

    // Garbage on the RTMP port, then refused keys: each publisher is disconnected.
    let rtmp = app.rtmp.unwrap();
    let mut garbage = tokio::net::TcpStream::connect(rtmp).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut garbage, &[0x42; 4096])
        .await
        .unwrap();
    drop(garbage);
    let forged = format!(
        "live_{}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        creator.id.replace('-', "")
    );
    for bad in [old_key.as_str(), "", "not-a-key", forged.as_str()] {
        let status = tokio::time::timeout(DEADLINE, publish(&app, bad).wait())
            .await
            .expect("a refused publisher is disconnected")
            .unwrap();
        assert!(!status.success(), "publishing with {bad:?} must fail");
    }
    let (_, streams) = app.get(&format!("/api/users/{}/streams", creator.id)).await;
    assert_eq!(
        streams["data"].as_array().unwrap().len(),
        0,
        "no broadcast was created"
    );

    // The right key works; a second publisher with it is refused, the first goes on.
    let _first = publish(&app, &key);
    let live = broadcast_in(&app, &creator, "live").await;
    let status = tokio::time::timeout(DEADLINE, publish(&app, &key).wait())
        .await
        .expect("the second publisher is disconnected")
        .unwrap();
    assert!(!status.success());
    assert_eq!(broadcast_in(&app, &creator, "live").await["id"], live["id"]);
}

async fn a_crashed_transcoder_ends_the_broadcast_and_drops_the_publisher(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let creator = app.signup("crashy").await;
    let key = stream_key(&app, &creator).await;
    let mut publisher = publish(&app, &key);
    let live = broadcast_in(&app, &creator, "live").await;
    let stream_id = live["id"].as_str().unwrap().to_owned();
    playable(&app, &stream_id).await;

    // The transcoder is the ffmpeg whose arguments name this broadcast's directory.
    let killed = std::process::Command::new("pkill")
        .args(["-KILL", "-f", &format!("live/{stream_id}/")])
        .status()
        .unwrap();
    assert!(killed.success(), "found the transcoder");

    let ended = broadcast_in(&app, &creator, "ended").await;
    assert_eq!(ended["id"], stream_id.as_str());
    let status = tokio::time::timeout(DEADLINE, publisher.wait())
        .await
        .expect("the publisher is disconnected")
        .unwrap();
    assert!(!status.success());
}

/// Zombie (exited, unreaped) processes whose parent is this test process.
fn zombie_children() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid …: comm may contain spaces, so split after the ')'.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            fields.first() == Some(&"Z") && fields.get(1) == Some(&me.as_str())
        })
        .count()
}

async fn ingests_beyond_the_node_cap_are_refused(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        config.media.max_ingests = 1;
        config.media.reconnect_grace_secs = 1;
    })
    .await;
    let first = app.signup("first_in").await;
    let second = app.signup("second_in").await;
    let first_key = stream_key(&app, &first).await;
    let second_key = stream_key(&app, &second).await;
    let mut publishing = publish(&app, &first_key);
    broadcast_in(&app, &first, "live").await;

    let refused = tokio::time::timeout(DEADLINE, publish(&app, &second_key).wait())
        .await
        .expect("the publisher over the cap is disconnected")
        .unwrap();
    assert!(!refused.success());
    let (_, streams) = app.get(&format!("/api/users/{}/streams", second.id)).await;
    assert_eq!(streams["data"].as_array().unwrap().len(), 0);

    // Once the slot is free, the next publisher gets in; nothing is left unreaped.
    publishing.kill().await.unwrap();
    publishing.wait().await.unwrap();
    broadcast_in(&app, &first, "ended").await;
    let _next = publish(&app, &second_key);
    broadcast_in(&app, &second, "live").await;
    // Other tests' exited children may await reaping for a moment; a leak stays.
    eventually("every exited child to be reaped", || async {
        (zombie_children() == 0).then_some(())
    })
    .await;
}

/// The server disconnects `publisher` within `limit`: ffmpeg fails on its own.
async fn cut_off(publisher: &mut Child, limit: Duration) {
    let status = tokio::time::timeout(limit, publisher.wait())
        .await
        .expect("the publisher is disconnected in time")
        .unwrap();
    assert!(!status.success());
}

/// Publishes with `key` until the ingest keeps it: the slot of a publish cut off a
/// moment ago is free once its transcoder has stopped.
async fn publish_when_free(app: &TestApp, user: &User, key: &str) -> (Child, Value) {
    let publisher = eventually("a free ingest slot", || async {
        let mut publisher = publish(app, key);
        let refused = tokio::time::timeout(Duration::from_secs(3), publisher.wait()).await;
        refused.is_err().then_some(publisher)
    })
    .await;
    (publisher, broadcast_in(app, user, "live").await)
}

/// A creator publishing on a node with one ingest slot calls `path`: it succeeds, the
/// publisher is cut off at once and the broadcast has ended. Returns the node, the
/// creator, its key, the answer and the ended broadcast's id.
async fn cut_off_by(db: DbConfig, path: &str) -> (TestApp, User, String, Value, Value) {
    let app = TestApp::spawn_configured(db, |config| config.media.max_ingests = 1).await;
    let creator = app.signup("cut_off").await;
    let key = stream_key(&app, &creator).await;
    let mut publisher = publish(&app, &key);
    let first = broadcast_in(&app, &creator, "live").await;
    let (status, answer) = app.post(path, Some(&creator.access), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    cut_off(&mut publisher, Duration::from_secs(5)).await;
    let ended = broadcast_in(&app, &creator, "ended").await;
    assert_eq!(ended["id"], first["id"]);
    (app, creator, key, answer, first["id"].clone())
}

async fn rotating_the_key_cuts_off_its_publisher_and_frees_the_slot(db: DbConfig) {
    let (app, creator, old_key, rotated, first) = cut_off_by(db, "/api/me/stream-key/rotate").await;
    // The only slot is free again, for the new key.
    let key = rotated["stream_key"].as_str().unwrap();
    assert_ne!(key, old_key);
    let (_publisher, second) = publish_when_free(&app, &creator, key).await;
    assert_ne!(second["id"], first);
}

async fn ending_the_broadcast_cuts_off_its_publisher_on_any_node(db: DbConfig) {
    let (app, creator, key, ended, first) = cut_off_by(db, "/api/streams/end").await;
    assert_eq!(ended["id"], first);

    // An end written by another node (straight to the store here) is noticed by the
    // session's periodic re-check.
    let (mut publisher, second) = publish_when_free(&app, &creator, &key).await;
    assert_ne!(second["id"], first);
    let user_id = creator.id.parse().unwrap();
    store_of(&app).await.end_stream(user_id).await.unwrap();
    cut_off(&mut publisher, Duration::from_secs(10)).await;
    publish_when_free(&app, &creator, &key).await;
}
