//! SRT ingest end to end: a real ffmpeg publishes MPEG-TS over SRT (libsrt, as OBS
//! does) to the server's listener, which checks the key in the `streamid` before the
//! handshake completes and transcodes what arrives into the same HLS ladder as RTMP.

use onair_store::DbConfig;
use tokio::process::Child;

use crate::media::{broadcast_in, encoder, playable, renditions_decode, stream_key};
use crate::support::{DEADLINE, TestApp};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    an_srt_publish_becomes_adaptive_hls_and_ends,
    wrong_keys_and_a_second_publisher_are_refused_over_srt,
    an_srt_reconnect_within_the_window_continues_the_broadcast,
    encrypted_srt_needs_the_passphrase,
);

/// A 640x360 test pattern over SRT, the key named by `stream_id`; `options` are more
/// of libsrt's URL options.
fn publish_srt(app: &TestApp, stream_id: &str, options: &str) -> Child {
    publish_srt_sized(app, stream_id, options, "640x360")
}

fn publish_srt_sized(app: &TestApp, stream_id: &str, options: &str, size: &str) -> Child {
    let addr = app.srt.expect("SRT ingest enabled");
    // latency: microseconds, as libsrt's URL takes it; 1316 bytes: 7 TS packets a datagram.
    let url = format!("srt://{addr}?streamid={stream_id}&latency=120000&pkt_size=1316{options}");
    encoder(size, "mpegts", &url)
}

/// Waits for a publisher that must be refused to give up; true if it failed.
async fn refused(mut publisher: Child) -> bool {
    let status = tokio::time::timeout(DEADLINE, publisher.wait())
        .await
        .expect("a refused SRT publisher gives up")
        .unwrap();
    !status.success()
}

async fn an_srt_publish_becomes_adaptive_hls_and_ends(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| config.media.reconnect_grace_secs = 1).await;
    let creator = app.signup("srt_caster").await;
    let key = stream_key(&app, &creator).await;
    let mut publisher = publish_srt_sized(&app, &format!("publish:{key}"), "", "1280x720");

    let live = broadcast_in(&app, &creator, "live").await;
    let stream_id = live["id"].as_str().unwrap();
    // The ladder is read from the stream's own H.264 parameters, as over RTMP.
    let renditions = playable(&app, stream_id).await;
    assert_eq!(
        renditions,
        ["source/index.m3u8", "480p/index.m3u8", "360p/index.m3u8"]
    );
    renditions_decode(&app, stream_id, &renditions, &[720, 480, 360]).await;

    publisher.kill().await.unwrap();
    let ended = broadcast_in(&app, &creator, "ended").await;
    assert_eq!(ended["id"], stream_id);
}

async fn wrong_keys_and_a_second_publisher_are_refused_over_srt(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let creator = app.signup("srt_guarded").await;
    let key = stream_key(&app, &creator).await;
    let forged = format!(
        "live_{}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        creator.id.replace('-', "")
    );
    // Garbage on the SRT port first: the listener carries on. Then encryption it has no
    // passphrase for: refused, announced or not (unannounced, srt-tokio's listener dies
    // and is bound again).
    let garbage = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    garbage
        .send_to(&[0x42; 1316], app.srt.unwrap())
        .await
        .unwrap();
    for encrypted in ["&pbkeylen=16", ""] {
        let options = format!("&passphrase=a-passphrase-of-its-own{encrypted}");
        let stream_id = format!("publish:{key}");
        assert!(refused(publish_srt(&app, &stream_id, &options)).await);
    }
    for bad in [
        "publish:not-a-key".to_owned(),
        format!("publish:{forged}"),
        format!("play:{key}"),
        "publish:".to_owned(),
    ] {
        assert!(
            refused(publish_srt(&app, &bad, "")).await,
            "{bad} must be refused"
        );
    }
    let (_, streams) = app.get(&format!("/api/users/{}/streams", creator.id)).await;
    assert_eq!(
        streams["data"].as_array().unwrap().len(),
        0,
        "no broadcast was created"
    );

    // The plain key works too; a second publisher of it is refused, the first goes on.
    let _first = publish_srt(&app, &key, "");
    let live = broadcast_in(&app, &creator, "live").await;
    playable(&app, live["id"].as_str().unwrap()).await;
    assert!(refused(publish_srt(&app, &format!("publish:{key}"), "")).await);
    assert_eq!(broadcast_in(&app, &creator, "live").await["id"], live["id"]);
}

async fn an_srt_reconnect_within_the_window_continues_the_broadcast(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| config.media.reconnect_grace_secs = 30).await;
    let creator = app.signup("srt_flaky").await;
    let stream_id = format!("#!::r={},m=publish", stream_key(&app, &creator).await);
    let mut first = publish_srt(&app, &stream_id, "");
    let live = broadcast_in(&app, &creator, "live").await;
    playable(&app, live["id"].as_str().unwrap()).await;
    first.kill().await.unwrap();
    broadcast_in(&app, &creator, "offline").await;

    let _second = publish_srt(&app, &stream_id, "");
    let resumed = broadcast_in(&app, &creator, "live").await;
    assert_eq!(
        resumed["id"], live["id"],
        "same broadcast after a reconnect"
    );
}

async fn encrypted_srt_needs_the_passphrase(db: DbConfig) {
    const PASSPHRASE: &str = "correct-horse-battery";
    let app = TestApp::spawn_configured(db, |config| {
        config.media.srt_passphrase = Some(PASSPHRASE.into());
    })
    .await;
    let creator = app.signup("srt_secret").await;
    let stream_id = format!("publish:{}", stream_key(&app, &creator).await);
    assert!(
        refused(publish_srt(&app, &stream_id, "")).await,
        "unencrypted"
    );
    let wrong = "&passphrase=not-the-passphrase&pbkeylen=16";
    assert!(refused(publish_srt(&app, &stream_id, wrong)).await);
    assert!(
        refused(publish_srt(
            &app,
            "publish:not-a-key",
            "&passphrase=correct-horse-battery"
        ))
        .await
    );
    let (_, streams) = app.get(&format!("/api/users/{}/streams", creator.id)).await;
    assert_eq!(streams["data"].as_array().unwrap().len(), 0);

    // OBS's default: the passphrase without a key length (AES-128 from its key material).
    let _publisher = publish_srt(&app, &stream_id, "&passphrase=correct-horse-battery");
    let live = broadcast_in(&app, &creator, "live").await;
    playable(&app, live["id"].as_str().unwrap()).await;
    let creator = app.signup("srt_secret_256").await;
    let stream_id = format!("publish:{}", stream_key(&app, &creator).await);
    let aes_256 = "&passphrase=correct-horse-battery&pbkeylen=32";
    let _publisher = publish_srt(&app, &stream_id, aes_256);
    broadcast_in(&app, &creator, "live").await;
}
