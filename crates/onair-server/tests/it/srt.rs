//! SRT ingest end to end: a real ffmpeg publishes MPEG-TS over SRT (libsrt, as OBS
//! does) to the server's listener, which checks the key in the `streamid` before the
//! handshake completes and transcodes what arrives into the same HLS ladder as RTMP.

use std::net::SocketAddr;
use std::time::Duration;

use onair_store::DbConfig;
use tokio::net::UdpSocket;
use tokio::process::Child;

use crate::media::{broadcast_in, encoder, get_bytes, playable, renditions_decode, stream_key};
use crate::support::{DEADLINE, TestApp, eventually};

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
    // The plain key works too.
    let _first = publish_srt(&app, &key, "");
    let live = broadcast_in(&app, &creator, "live").await;
    let stream_id = live["id"].as_str().unwrap();
    playable(&app, stream_id).await;
    let before = last_segment(&app, stream_id).await;

    // While it streams: garbage on the SRT port, handshakes no encoder sends, encryption
    // the node has no passphrase for (announced or not), wrong keys and a second
    // publisher of the live key are all refused, and the first publisher goes on.
    let addr = app.srt.unwrap();
    let garbage = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    garbage.send_to(&[0x42; 1316], addr).await.unwrap();
    hostile_handshakes(addr, &format!("publish:{key}")).await;
    for encrypted in ["&pbkeylen=16", ""] {
        let options = format!("&passphrase=a-passphrase-of-its-own{encrypted}");
        assert!(refused(publish_srt(&app, &format!("publish:{key}"), &options)).await);
    }
    let forged = format!(
        "live_{}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        creator.id.replace('-', "")
    );
    for bad in [
        "publish:not-a-key".to_owned(),
        format!("publish:{forged}"),
        format!("play:{key}"),
        "publish:".to_owned(),
        format!("publish:{key}"),
    ] {
        assert!(
            refused(publish_srt(&app, &bad, "")).await,
            "{bad} must be refused"
        );
    }
    let (_, streams) = app.get(&format!("/api/users/{}/streams", creator.id)).await;
    let streams = streams["data"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "no other broadcast was created");
    assert_eq!(broadcast_in(&app, &creator, "live").await["id"], live["id"]);
    eventually("the first publisher's stream goes on", || async {
        (last_segment(&app, stream_id).await > before).then_some(())
    })
    .await;
}

/// The newest segment's media sequence number in a live broadcast's source playlist.
async fn last_segment(app: &TestApp, stream_id: &str) -> u64 {
    let (_, _, playlist) = get_bytes(app, &format!("/live/{stream_id}/source/index.m3u8")).await;
    let playlist = String::from_utf8(playlist).unwrap();
    let first: u64 = playlist
        .lines()
        .find_map(|line| line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    first + playlist.matches("#EXTINF").count() as u64
}

/// Completes SRT's induction, then concludes, naming `stream_id`, with what no encoder
/// sends: an extension of a type SRT does not define, and key material cut short.
/// Whatever the listener answers, it must go on serving everyone else.
async fn hostile_handshakes(addr: SocketAddr, stream_id: &str) {
    const HSREQ: u16 = 1;
    const KMREQ: u16 = 2;
    const CONFIG: u16 = 4;
    let mut buffer = [0; 1500];
    let unknown_extension = [0x7f, 0xff, 0, 1, 1, 2, 3, 4];
    let short_key_material = [0, 3, 0, 8, 0x12, 0x20, 0x29, 0x01];
    for (flags, extension) in [
        (HSREQ | CONFIG, unknown_extension),
        (HSREQ | KMREQ, short_key_material),
    ] {
        // A caller of its own each time (one socket's second conclusion is a repeat).
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.send_to(&handshake(4, 2, 1, 0), addr).await.unwrap();
        let (len, _) = tokio::time::timeout(DEADLINE, socket.recv_from(&mut buffer))
            .await
            .expect("an induction answer")
            .unwrap();
        assert!(len >= 48, "a handshake");
        let cookie = u32::from_be_bytes(buffer[44..48].try_into().unwrap());
        let mut conclusion = handshake(5, flags, u32::MAX, cookie);
        // HSREQ: SRT 1.5.1, TSBPD and the usual flags, 120 ms both ways.
        for word in [0x0001_0003, 0x0001_0501, 0xbf, 120 << 16 | 120] {
            conclusion.extend(u32::to_be_bytes(word));
        }
        conclusion.extend(stream_id_extension(stream_id));
        conclusion.extend(extension);
        socket.send_to(&conclusion, addr).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buffer)).await;
    }
}

/// SRT's stream id extension: the string's bytes in 32-bit words, each little-endian.
fn stream_id_extension(stream_id: &str) -> Vec<u8> {
    let mut bytes = stream_id.as_bytes().to_vec();
    bytes.resize(bytes.len().div_ceil(4) * 4, 0);
    let words = u16::try_from(bytes.len() / 4).unwrap();
    let mut extension = [5_u16.to_be_bytes(), words.to_be_bytes()].concat();
    for word in bytes.chunks(4) {
        extension.extend(word.iter().rev());
    }
    extension
}

/// An SRT handshake control packet from socket 0x1234: `kind` 1 is induction,
/// `u32::MAX` conclusion.
fn handshake(version: u32, extension_field: u16, kind: u32, cookie: u32) -> Vec<u8> {
    let mut packet = Vec::with_capacity(128);
    // Control packet, type handshake; no timestamp; to no socket yet.
    for word in [0x8000_0000_u32, 0, 0, 0, version] {
        packet.extend(word.to_be_bytes());
    }
    packet.extend(0_u16.to_be_bytes()); // no encryption announced
    packet.extend(extension_field.to_be_bytes());
    // Initial sequence number, MTU, flow window, type, socket id, cookie.
    for word in [1000, 1500, 8192, kind, 0x1234, cookie] {
        packet.extend(u32::to_be_bytes(word));
    }
    packet.extend([127, 0, 0, 1]);
    packet.extend([0; 12]);
    packet
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
