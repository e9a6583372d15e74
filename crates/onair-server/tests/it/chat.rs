//! Chat over real WebSockets: rooms, history, auth, validation, limits.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::support::{TestApp, User, each_backend, each_backend_configured};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(app: &TestApp, path: &str) -> Socket {
    let url = format!("ws://{}{path}", app.addr);
    connect_async(url).await.expect("chat socket opens").0
}

/// The next JSON frame, skipping protocol pings.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open")
            .expect("valid frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

async fn say(socket: &mut Socket, text: &str) {
    send(socket, json!({"type": "message", "text": text})).await;
}

fn room_of(user: &User) -> String {
    format!("/api/channels/{}/chat", user.id)
}

#[tokio::test]
async fn viewers_read_members_talk_and_latecomers_get_history() {
    each_backend(|app| async move {
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
        let mut lurker = open(&app, &room_of(&streamer)).await;
        assert_eq!(next(&mut lurker).await["user"], Value::Null);

        say(&mut member, "  hello\u{1b}[2J there  ").await;
        for socket in [&mut member, &mut lurker] {
            let message = next(socket).await;
            assert_eq!(message["type"], "message");
            assert_eq!(
                message["text"], "hello[2J there",
                "control characters stripped, trimmed"
            );
            assert_eq!(message["user"]["username"], "fanatic");
        }

        say(&mut lurker, "can I talk?").await;
        assert_eq!(next(&mut lurker).await["code"], "unauthenticated");
        send(
            &mut lurker,
            json!({"type": "auth", "token": streamer.access}),
        )
        .await;
        assert_eq!(next(&mut lurker).await["type"], "authenticated");
        say(&mut lurker, "welcome!").await;
        assert_eq!(next(&mut member).await["text"], "welcome!");

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
        assert_eq!(next(&mut late).await["text"], "hello[2J there");
        assert_eq!(next(&mut late).await["text"], "welcome!");
    })
    .await;
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_socket_stays_open() {
    each_backend(|app| async move {
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
    })
    .await;
}

#[tokio::test]
async fn senders_are_rate_limited() {
    each_backend_configured(
        |config| {
            config.chat_rate_burst = 2;
            config.chat_rate_period_ms = 60_000;
        },
        |app| async move {
            let streamer = app.signup("limited").await;
            let mut socket = open(
                &app,
                &format!("{}?access_token={}", room_of(&streamer), streamer.access),
            )
            .await;
            next(&mut socket).await;
            for n in 0..2 {
                say(&mut socket, &format!("message {n}")).await;
                assert_eq!(next(&mut socket).await["type"], "message");
            }
            say(&mut socket, "one too many").await;
            let refused = next(&mut socket).await;
            assert_eq!(refused["code"], "rate_limited");
            assert!(refused["retry_after_ms"].as_u64().unwrap() > 50_000);
        },
    )
    .await;
}

#[tokio::test]
async fn upgrades_are_refused_before_the_handshake() {
    each_backend_configured(
        |config| config.chat_max_connections = 2,
        |app| async move {
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
        },
    )
    .await;
}

#[tokio::test]
async fn unknown_rooms_and_bad_tokens_are_refused() {
    each_backend(|app| async move {
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
    })
    .await;
}
