//! Chat over real WebSockets: rooms, history, auth, validation, limits.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use onair_store::DbConfig;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::support::{DEADLINE, TestApp, User, redis_url};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    viewers_read_members_talk_and_latecomers_get_history,
    bad_frames_get_error_frames_and_the_socket_stays_open,
    senders_are_rate_limited,
    upgrades_are_refused_before_the_handshake,
    unknown_rooms_and_bad_tokens_are_refused,
    moderators_delete_and_time_out,
    bans_close_sockets_and_survive_reconnects,
    slow_mode_and_followers_only,
    #[redis] rooms_span_nodes_through_redis,
    a_reader_that_never_reads_is_dropped_while_others_keep_up,
    a_message_over_the_size_limit_closes_with_1009,
    a_node_shutting_down_closes_sockets_with_1001,
);

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn open(app: &TestApp, path: &str) -> Socket {
    let url = format!("ws://{}{path}", app.addr);
    connect_async(url).await.expect("chat socket opens").0
}

/// The next JSON frame, skipping protocol pings.
pub(crate) async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(DEADLINE, socket.next())
            .await
            .expect("a frame before the deadline")
            .expect("socket open")
            .expect("valid frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

pub(crate) async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

pub(crate) async fn say(socket: &mut Socket, text: &str) {
    send(socket, json!({"type": "message", "text": text})).await;
}

/// Asserts that `frame` is the chat message `text`, sent by `from` in `owner`'s room.
#[track_caller]
fn assert_message(frame: &Value, owner: &User, from: &User, text: &str) {
    let shown = |key: &str| frame[key].as_str();
    let sender = |key: &str| frame["user"][key].as_str();
    assert_eq!(
        (
            shown("type"),
            shown("room"),
            sender("id"),
            sender("username")
        ),
        (
            Some("message"),
            Some(owner.id.as_str()),
            Some(from.id.as_str()),
            Some(from.username.as_str())
        ),
        "{frame}"
    );
    assert_eq!(shown("text"), Some(text), "{frame}");
    assert!(
        frame["id"].is_string() && frame["sent_at"].is_string(),
        "{frame}"
    );
}

/// Asserts that `refusal` asks to wait out what is left of `period` since `since` (an
/// instant before the action that started it): however slow the machine, no more than
/// the period and no less than the period minus the time that has passed since.
#[track_caller]
fn assert_retry_after(refusal: &Value, period: Duration, since: Instant) {
    let wait = refusal["retry_after_ms"].as_u64().expect("retry_after_ms");
    let wait = Duration::from_millis(wait);
    // Less what has passed, and 1 ms for the truncation to milliseconds.
    let least = period.saturating_sub(since.elapsed() + Duration::from_millis(1));
    assert!(
        wait >= least && wait <= period,
        "{refusal}: {wait:?} not in {least:?}..={period:?}"
    );
}

pub(crate) fn room_of(user: &User) -> String {
    format!("/api/channels/{}/chat", user.id)
}

async fn viewers_read_members_talk_and_latecomers_get_history(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let streamer = app.signup("chatty").await;
    let fan = app.signup("fanatic").await;
    let mut member = open(
        &app,
        &format!("{}?access_token={}", room_of(&streamer), fan.access),
    )
    .await;
    let welcome = next(&mut member).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["user"]["username"], "fanatic");
    assert_eq!(welcome["role"], "viewer");
    let mut lurker = open(&app, &room_of(&streamer)).await;
    let anonymous = next(&mut lurker).await;
    assert_eq!(
        (&anonymous["user"], &anonymous["role"]),
        (&Value::Null, &Value::Null)
    );

    say(&mut member, "  hello\u{1b}[2J there  ").await;
    // Control characters stripped, trimmed.
    for socket in [&mut member, &mut lurker] {
        assert_message(&next(socket).await, &streamer, &fan, "hello[2J there");
    }

    say(&mut lurker, "can I talk?").await;
    assert_eq!(next(&mut lurker).await["code"], "unauthenticated");
    send(
        &mut lurker,
        json!({"type": "auth", "token": streamer.access}),
    )
    .await;
    let authenticated = next(&mut lurker).await;
    assert_eq!(authenticated["type"], "authenticated");
    assert_eq!(authenticated["user"]["id"], streamer.id.as_str());
    assert_eq!(authenticated["role"], "owner");
    // Emoji keep their zero-width joiners.
    say(&mut lurker, "welcome! 👩\u{200D}💻").await;
    assert_message(
        &next(&mut member).await,
        &streamer,
        &streamer,
        "welcome! 👩\u{200D}💻",
    );

    // A socket joining later (through the stream's URL) replays the room's history.
    let (_, stream) = app
        .post(
            "/api/streams/start",
            Some(&streamer.access),
            json!({"title": "Talk show"}),
        )
        .await;
    let mut late = open(
        &app,
        &format!("/api/streams/{}/chat", stream["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(next(&mut late).await["history"], 2);
    assert_message(&next(&mut late).await, &streamer, &fan, "hello[2J there");
    assert_message(
        &next(&mut late).await,
        &streamer,
        &streamer,
        "welcome! 👩\u{200D}💻",
    );
}

async fn bad_frames_get_error_frames_and_the_socket_stays_open(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let streamer = app.signup("strict").await;
    let mut socket = open(
        &app,
        &format!("{}?access_token={}", room_of(&streamer), streamer.access),
    )
    .await;
    next(&mut socket).await;
    let cases = [
        (Message::Text("{not json".into()), "invalid_frame"),
        (
            Message::Text(json!({"type": "shout", "text": "x"}).to_string().into()),
            "invalid_frame",
        ),
        (
            Message::Text(
                json!({"type": "message", "text": "x", "color": "red"})
                    .to_string()
                    .into(),
            ),
            "invalid_frame",
        ),
        (
            Message::Text(
                json!({"type": "message", "text": " \u{7} "})
                    .to_string()
                    .into(),
            ),
            "invalid_message",
        ),
        (
            Message::Text(
                json!({"type": "message", "text": "zero\u{200B}width"})
                    .to_string()
                    .into(),
            ),
            "invalid_message",
        ),
        (
            Message::Text(
                json!({"type": "message", "text": "x".repeat(501)})
                    .to_string()
                    .into(),
            ),
            "invalid_message",
        ),
        (
            Message::Text(
                json!({"type": "message", "text": "x".repeat(5_000)})
                    .to_string()
                    .into(),
            ),
            "frame_too_large",
        ),
        (Message::Binary(vec![1, 2, 3].into()), "unsupported_frame"),
        (
            Message::Text(
                json!({"type": "auth", "token": "forged"})
                    .to_string()
                    .into(),
            ),
            "invalid_token",
        ),
    ];
    for (frame, code) in cases {
        socket.send(frame).await.unwrap();
        let reply = next(&mut socket).await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some(code)),
            "{reply}"
        );
    }
    send(&mut socket, json!({"type": "ping"})).await;
    assert_eq!(next(&mut socket).await["type"], "pong");
}

async fn senders_are_rate_limited(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        config.chat.rate_burst = 2;
        config.chat.rate_period_ms = 60_000;
    })
    .await;
    let streamer = app.signup("limited").await;
    let mut socket = open(
        &app,
        &format!("{}?access_token={}", room_of(&streamer), streamer.access),
    )
    .await;
    next(&mut socket).await;
    let first_sent = Instant::now();
    for n in 0..2 {
        let text = format!("message {n}");
        say(&mut socket, &text).await;
        assert_message(&next(&mut socket).await, &streamer, &streamer, &text);
    }
    say(&mut socket, "one too many").await;
    let refused = next(&mut socket).await;
    assert_eq!(refused["code"], "rate_limited");
    // One message a minute after the burst: the next is a minute after the first.
    assert_retry_after(&refused, Duration::from_secs(60), first_sent);
}

async fn upgrades_are_refused_before_the_handshake(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| config.chat.max_connections = 2).await;
    let streamer = app.signup("popular_room").await;
    let _first = open(&app, &room_of(&streamer)).await;
    let _second = open(&app, &room_of(&streamer)).await;
    let third = connect_async(format!("ws://{}{}", app.addr, room_of(&streamer))).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = third else {
        panic!("the third socket must be refused");
    };
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");

    let plain = app.get(&room_of(&streamer)).await;
    crate::support::assert_error(&plain, 400, "websocket_required");
}

async fn unknown_rooms_and_bad_tokens_are_refused(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let streamer = app.signup("guarded_room").await;
    for (path, status) in [
        (
            "/api/channels/01900000-0000-7000-8000-000000000000/chat".to_owned(),
            404,
        ),
        (
            "/api/streams/01900000-0000-7000-8000-000000000000/chat".to_owned(),
            404,
        ),
        (format!("{}?access_token=forged", room_of(&streamer)), 401),
    ] {
        let refused = connect_async(format!("ws://{}{path}", app.addr)).await;
        let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = refused else {
            panic!("{path} must be refused");
        };
        assert_eq!(response.status(), status, "{path}");
    }
}

/// A socket of `user` in `room`'s chat: its owner's, or a viewer's.
pub(crate) async fn member_socket(app: &TestApp, room: &User, user: &User) -> Socket {
    let role = if room.id == user.id {
        "owner"
    } else {
        "viewer"
    };
    member_socket_as(app, room, user, role).await
}

/// A socket of `user` in `room`'s chat, welcomed with `role`.
async fn member_socket_as(app: &TestApp, room: &User, user: &User, role: &str) -> Socket {
    let mut socket = open(
        app,
        &format!("{}?access_token={}", room_of(room), user.access),
    )
    .await;
    let welcome = next(&mut socket).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["user"]["id"], user.id.as_str(), "{welcome}");
    assert_eq!(welcome["role"], role, "{welcome}");
    socket
}

/// Skips frames until the message with `text` arrives.
pub(crate) async fn heard(socket: &mut Socket, text: &str) {
    while next_of(socket, "message").await["text"] != text {}
}

/// Skips frames until one of `kind` arrives.
pub(crate) async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let frame = next(socket).await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

pub(crate) async fn rest(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    user: &User,
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    app.request(method, path, Some(&user.access), body).await
}

async fn moderators_delete_and_time_out(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let owner = app.signup("mod_owner").await;
    let moderator = app.signup("the_mod").await;
    let viewer = app.signup("noisy").await;
    let appoint = format!("/api/channels/{}/moderators/{}", owner.id, moderator.id);
    let (status, _) = rest(&app, reqwest::Method::PUT, &appoint, &owner, None).await;
    assert_eq!(status, 204);
    let (status, body) = rest(&app, reqwest::Method::PUT, &appoint, &viewer, None).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    let mut mod_socket = member_socket_as(&app, &owner, &moderator, "moderator").await;
    let mut viewer_socket = member_socket(&app, &owner, &viewer).await;
    say(&mut viewer_socket, "spam spam").await;
    let spam = next_of(&mut mod_socket, "message").await;
    assert_message(&spam, &owner, &viewer, "spam spam");
    let echo = next_of(&mut viewer_socket, "message").await;
    assert_eq!(echo, spam, "every socket gets the same frame");

    // Delete over REST: everyone is told, and latecomers no longer see it.
    let delete = format!(
        "/api/channels/{}/chat/messages/{}",
        owner.id,
        spam["id"].as_str().unwrap()
    );
    let (status, _) = rest(&app, reqwest::Method::DELETE, &delete, &moderator, None).await;
    assert_eq!(status, 204);
    assert_eq!(
        next_of(&mut viewer_socket, "message_deleted").await["id"],
        spam["id"]
    );
    let mut late = open(&app, &room_of(&owner)).await;
    assert_eq!(next(&mut late).await["history"], 0);

    // Time out over the socket: the viewer is told and can no longer talk.
    send(
        &mut mod_socket,
        json!({"type": "timeout", "user_id": viewer.id, "seconds": 600}),
    )
    .await;
    let notice = next_of(&mut viewer_socket, "user_timed_out").await;
    assert_eq!(notice["user_id"], viewer.id.as_str());
    say(&mut viewer_socket, "let me talk").await;
    let refused = next_of(&mut viewer_socket, "error").await;
    assert_eq!(refused["code"], "timed_out");
    assert!(refused["retry_after_ms"].as_u64().unwrap() > 500_000);
    // A new socket of the timed-out viewer is told on join, before trying to talk.
    let mut rejoined = open(
        &app,
        &format!("{}?access_token={}", room_of(&owner), viewer.access),
    )
    .await;
    let welcome = next_of(&mut rejoined, "welcome").await;
    let until = |frame: &Value, key: &str| {
        chrono::DateTime::parse_from_rfc3339(frame[key].as_str().unwrap()).unwrap()
    };
    let drift = until(&welcome, "timed_out_until") - until(&notice, "until");
    assert!(drift.num_milliseconds().abs() < 1_000, "{welcome} {notice}");

    for (frame, code) in [
        (
            json!({"type": "timeout", "user_id": viewer.id, "seconds": 0}),
            "validation_failed",
        ),
        (
            json!({"type": "timeout", "user_id": viewer.id, "seconds": 1_209_601}),
            "validation_failed",
        ),
        (json!({"type": "ban", "user_id": owner.id}), "forbidden"),
    ] {
        send(&mut mod_socket, frame).await;
        assert_eq!(next_of(&mut mod_socket, "error").await["code"], code);
    }
    send(
        &mut viewer_socket,
        json!({"type": "ban", "user_id": moderator.id}),
    )
    .await;
    assert_eq!(
        next_of(&mut viewer_socket, "error").await["code"],
        "forbidden"
    );

    let (status, log) = app
        .get_as(
            &format!("/api/channels/{}/moderation-log", owner.id),
            &owner.access,
        )
        .await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["timeout", "delete", "add_moderator"]);
    let (status, _) = app
        .get_as(
            &format!("/api/channels/{}/moderation-log", owner.id),
            &moderator.access,
        )
        .await;
    assert_eq!(status, 403);
}

async fn bans_close_sockets_and_survive_reconnects(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let owner = app.signup("ban_owner").await;
    let troll = app.signup("troll").await;
    let mut troll_socket = member_socket(&app, &owner, &troll).await;
    let bans = format!("/api/channels/{}/bans", owner.id);
    let (status, _) = rest(
        &app,
        reqwest::Method::POST,
        &bans,
        &owner,
        Some(json!({"user_id": troll.id, "reason": "spam"})),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        next_of(&mut troll_socket, "user_banned").await["user_id"],
        troll.id.as_str()
    );
    let closed = tokio::time::timeout(DEADLINE, troll_socket.next())
        .await
        .unwrap();
    assert!(
        matches!(closed, Some(Ok(Message::Close(_))) | None),
        "{closed:?}"
    );

    let again = connect_async(format!(
        "ws://{}{}?access_token={}",
        app.addr,
        room_of(&owner),
        troll.access
    ))
    .await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = again else {
        panic!("a banned user cannot log in")
    };
    assert_eq!(response.status(), 403);
    let mut anonymous = open(&app, &room_of(&owner)).await;
    next(&mut anonymous).await;
    send(
        &mut anonymous,
        json!({"type": "auth", "token": troll.access}),
    )
    .await;
    assert_eq!(next_of(&mut anonymous, "error").await["code"], "banned");

    let (status, _) = rest(
        &app,
        reqwest::Method::DELETE,
        &format!("{bans}/{}", troll.id),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let mut forgiven = member_socket(&app, &owner, &troll).await;
    say(&mut forgiven, "sorry").await;
    assert_message(
        &next_of(&mut forgiven, "message").await,
        &owner,
        &troll,
        "sorry",
    );
}

async fn slow_mode_and_followers_only(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let owner = app.signup("modes_owner").await;
    let follower = app.signup("loyal").await;
    let drifter = app.signup("drifter").await;
    app.request(
        reqwest::Method::POST,
        &format!("/api/users/{}/follow", owner.id),
        Some(&follower.access),
        None,
    )
    .await;
    let settings = format!("/api/channels/{}/chat/settings", owner.id);
    let (status, _) = rest(
        &app,
        reqwest::Method::PUT,
        &settings,
        &owner,
        Some(json!({"slow_mode_secs": 60, "followers_only_minutes": 0})),
    )
    .await;
    assert_eq!(status, 204);
    let (_, current) = app.get(&settings).await;
    assert_eq!(
        current,
        json!({"slow_mode_secs": 60, "followers_only_minutes": 0})
    );

    let mut loyal = member_socket(&app, &owner, &follower).await;
    let mut outsider = member_socket(&app, &owner, &drifter).await;
    let mut host = member_socket(&app, &owner, &owner).await;
    say(&mut outsider, "hi").await;
    assert_eq!(
        next_of(&mut outsider, "error").await["code"],
        "followers_only"
    );
    let first_sent = Instant::now();
    say(&mut loyal, "first").await;
    assert_message(
        &next_of(&mut loyal, "message").await,
        &owner,
        &follower,
        "first",
    );
    say(&mut loyal, "second").await;
    let slow = next_of(&mut loyal, "error").await;
    assert_eq!(slow["code"], "slow_mode");
    assert_retry_after(&slow, Duration::from_secs(60), first_sent);
    for text in ["owners are exempt", "from both modes"] {
        say(&mut host, text).await;
        heard(&mut host, text).await;
    }

    // Turning the modes off reaches open sockets at once.
    rest(
        &app,
        reqwest::Method::PUT,
        &settings,
        &owner,
        Some(json!({"slow_mode_secs": 0, "followers_only_minutes": null})),
    )
    .await;
    assert_eq!(
        next_of(&mut outsider, "settings").await["slow_mode_secs"],
        0
    );
    say(&mut outsider, "now I can").await;
    heard(&mut outsider, "now I can").await;
    let bad = rest(
        &app,
        reqwest::Method::PUT,
        &settings,
        &owner,
        Some(json!({"slow_mode_secs": -1, "followers_only_minutes": null})),
    )
    .await;
    crate::support::assert_error(&bad, 422, "validation_failed");
    let forbidden = rest(
        &app,
        reqwest::Method::PUT,
        &settings,
        &drifter,
        Some(json!({"slow_mode_secs": 5, "followers_only_minutes": null})),
    )
    .await;
    crate::support::assert_error(&forbidden, 403, "forbidden");
}

fn on_redis(config: &mut onair_server::Config) {
    config.redis.url = Some(redis_url());
}

async fn rooms_span_nodes_through_redis(db: DbConfig) {
    let node_a = TestApp::spawn_configured(db, on_redis).await;
    // A second node on the same database and Redis.
    let node_b = TestApp::spawn_configured(node_a.db.clone(), on_redis).await;
    let owner = node_a.signup("two_nodes").await;
    let fan = node_a.signup("node_fan").await;
    let troll = node_a.signup("node_troll").await;

    let mut on_a = member_socket(&node_a, &owner, &fan).await;
    let mut on_b = member_socket(&node_b, &owner, &owner).await;
    let mut troll_on_b = member_socket(&node_b, &owner, &troll).await;
    say(&mut on_a, "hello from node A").await;
    heard(&mut on_b, "hello from node A").await;
    say(&mut on_b, "and back from B").await;
    heard(&mut on_a, "and back from B").await;

    // History lives in Redis: a socket on either node replays it.
    let mut late = open(&node_b, &room_of(&owner)).await;
    assert_eq!(next(&mut late).await["history"], 2);
    assert_message(&next(&mut late).await, &owner, &fan, "hello from node A");
    assert_message(&next(&mut late).await, &owner, &owner, "and back from B");

    // A ban issued through node A closes the troll's socket on node B.
    let bans = format!("/api/channels/{}/bans", owner.id);
    let (status, _) = rest(
        &node_a,
        reqwest::Method::POST,
        &bans,
        &owner,
        Some(json!({"user_id": troll.id})),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        next_of(&mut troll_on_b, "user_banned").await["user_id"],
        troll.id.as_str()
    );
    let closed = tokio::time::timeout(DEADLINE, troll_on_b.next())
        .await
        .unwrap();
    assert!(
        matches!(closed, Some(Ok(Message::Close(_))) | None),
        "{closed:?}"
    );

    // A broadcast started through node A is announced to the channel's pages on node B.
    let start = json!({"title": "Across nodes", "category": "Talk"});
    let (status, _) = rest(
        &node_a,
        reqwest::Method::POST,
        "/api/streams/start",
        &owner,
        Some(start),
    )
    .await;
    assert_eq!(status, 201);
    next_of(&mut on_b, "channel_changed").await;
    node_b.shutdown().await;
}

async fn a_reader_that_never_reads_is_dropped_while_others_keep_up(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        config.chat.send_queue = 64;
        config.chat.rate_burst = 100_000;
        config.chat.rate_period_ms = 1;
    })
    .await;
    let owner = app.signup("firehose").await;
    let mut talker = member_socket(&app, &owner, &owner).await;
    // A tiny receive buffer, so the unread frames back up into the server fast.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let url = format!("ws://{}{}", app.addr, room_of(&owner));
    let (mut stalled, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    next(&mut stalled).await;
    let mut reader = open(&app, &room_of(&owner)).await;
    next(&mut reader).await;
    const MESSAGES: usize = 8_000;
    // Numbered, so a reader that keeps up is seen to get each one, once, in order.
    let text = |n: usize| format!("{n:05} {}", "x".repeat(494));
    let sender = owner.clone();
    let reading = tokio::spawn(async move {
        for n in 0..MESSAGES {
            assert_message(&next(&mut reader).await, &sender, &sender, &text(n));
        }
    });
    // One message in flight at a time, each ~700 bytes: the stalled socket's
    // buffers fill, it falls a whole send queue behind, and it is dropped.
    for n in 0..MESSAGES {
        say(&mut talker, &text(n)).await;
        assert_message(&next(&mut talker).await, &owner, &owner, &text(n));
    }
    reading.await.expect("the reader got every message");

    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            match stalled.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the stalled socket is closed");
    assert_eq!(closed, Some(1008), "closed as too slow");
}

/// The close frame the server ends `socket` with, skipping anything before it.
async fn close_code(socket: &mut Socket) -> CloseCode {
    loop {
        let message = tokio::time::timeout(DEADLINE, socket.next())
            .await
            .expect("the server closes before the deadline")
            .expect("a close frame before the connection ends")
            .expect("a valid frame, not a dropped connection");
        if let Message::Close(frame) = message {
            return frame.expect("a close code").code;
        }
    }
}

async fn a_message_over_the_size_limit_closes_with_1009(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let streamer = app.signup("bigtalk").await;
    let mut socket = open(&app, &room_of(&streamer)).await;
    next(&mut socket).await;
    let huge = "x".repeat(100 * 1024);
    socket.send(Message::Text(huge.into())).await.unwrap();
    assert_eq!(close_code(&mut socket).await, CloseCode::Size);
}

async fn a_node_shutting_down_closes_sockets_with_1001(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let streamer = app.signup("goingaway").await;
    let mut socket = open(&app, &room_of(&streamer)).await;
    assert_eq!(next(&mut socket).await["type"], "welcome");
    let stopping = tokio::spawn(app.shutdown());
    assert_eq!(close_code(&mut socket).await, CloseCode::Away);
    tokio::time::timeout(DEADLINE, stopping)
        .await
        .expect("the node stops once its sockets are closed")
        .unwrap();
}
