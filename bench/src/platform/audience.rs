//! The audience of the live channels: HLS viewers as a player behaves (master playlist,
//! then its rendition's playlist and every new segment at the playlist's pace, a viewer
//! heartbeat every 15 s), and chat sockets (readers, one sender per channel).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::chat_client::{Delivery, END, Endpoint, Socket, connect, read, stamp};

/// How often a player says it is still watching.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);

/// What one viewer measured: latencies of successful fetches, and failures.
#[derive(Default)]
pub struct Watched {
    pub playlists: Vec<Duration>,
    pub segments: Vec<Duration>,
    pub heartbeats: Vec<Duration>,
    pub errors: usize,
}

impl Watched {
    pub fn merge(&mut self, other: Watched) {
        self.playlists.extend(other.playlists);
        self.segments.extend(other.segments);
        self.heartbeats.extend(other.heartbeats);
        self.errors += other.errors;
    }
}

/// One viewer of `stream_id` on the API node `api`, watching its `nth` rendition (in
/// turn over those the master lists), from `start` until `until`.
pub async fn watch(
    client: reqwest::Client,
    api: String,
    stream_id: String,
    nth: usize,
    (start, until): (Instant, Instant),
) -> anyhow::Result<Watched> {
    tokio::time::sleep_until(start.into()).await;
    let mut watched = Watched::default();
    let live = format!("{api}/live/{stream_id}");
    let token: Value = client
        .post(format!("{api}/api/streams/{stream_id}/viewer-token"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = token["viewer_token"].as_str().context("viewer token")?;
    let master = timed(
        &client,
        &format!("{live}/master.m3u8"),
        &mut watched.playlists,
    )
    .await?
    .context("master playlist")?;
    let renditions: Vec<&str> = master.lines().filter(|l| l.ends_with(".m3u8")).collect();
    anyhow::ensure!(
        !renditions.is_empty(),
        "a master playlist without renditions"
    );
    let rendition = renditions[nth % renditions.len()];
    let segment_base = match rendition.rsplit_once('/') {
        Some((dir, _)) => format!("{live}/{dir}"),
        None => live.clone(),
    };
    let mut seen = HashSet::new();
    let mut next_heartbeat = Instant::now();
    while Instant::now() < until {
        if Instant::now() >= next_heartbeat {
            let sent = Instant::now();
            let answer = client
                .post(format!("{api}/api/streams/{stream_id}/heartbeat"))
                .json(&json!({"viewer_token": token}))
                .send()
                .await;
            match answer {
                Ok(r) if r.status().is_success() => watched.heartbeats.push(sent.elapsed()),
                _ => watched.errors += 1,
            }
            next_heartbeat += HEARTBEAT_EVERY;
        }
        let Some(playlist) = timed(
            &client,
            &format!("{live}/{rendition}"),
            &mut watched.playlists,
        )
        .await?
        else {
            watched.errors += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let target = playlist
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
            .and_then(|t| t.trim().parse::<f64>().ok())
            .unwrap_or(1.0);
        let segments: Vec<&str> = playlist
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        // A player joining starts a few segments from the live edge.
        let first_fetch = seen.is_empty();
        let skip = if first_fetch {
            segments.len().saturating_sub(3)
        } else {
            0
        };
        for segment in &segments[skip..] {
            if seen.insert((*segment).to_owned()) {
                let url = format!("{segment_base}/{segment}");
                if timed(&client, &url, &mut watched.segments).await?.is_none() {
                    watched.errors += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs_f64(target)).await;
    }
    Ok(watched)
}

/// GETs `url`; on success records the time to the whole body and returns it as text.
async fn timed(
    client: &reqwest::Client,
    url: &str,
    into: &mut Vec<Duration>,
) -> anyhow::Result<Option<String>> {
    let sent = Instant::now();
    let Ok(response) = client.get(url).send().await else {
        return Ok(None);
    };
    if !response.status().is_success() {
        return Ok(None);
    }
    let body = response.bytes().await?;
    into.push(sent.elapsed());
    Ok(Some(String::from_utf8_lossy(&body).into_owned()))
}

/// A channel's chat: its readers (reading until the sender's last message) and the
/// sender's socket.
pub struct Room {
    readers: Vec<JoinHandle<Vec<Delivery>>>,
    sender: Socket,
}

impl Room {
    /// `readers` anonymous sockets and the creator's on the chat node `chat` (host:port).
    pub async fn open(
        chat: &str,
        channel: &str,
        token: &str,
        readers: usize,
        origin: Instant,
    ) -> anyhow::Result<Self> {
        let chat = Endpoint::local(chat);
        let chat = &chat;
        let mut handles = Vec::with_capacity(readers);
        for _ in 0..readers {
            let socket = connect(chat, channel, None).await?;
            handles.push(tokio::spawn(read(socket, origin)));
        }
        let sender = connect(chat, channel, Some(token)).await?;
        Ok(Self {
            readers: handles,
            sender,
        })
    }

    /// Sends a stamped message every `every` until `until`, then the last message; returns
    /// how many were sent and every reader's deliveries.
    pub async fn talk(
        mut self,
        every: Duration,
        phase: Duration,
        until: Instant,
        origin: Instant,
    ) -> anyhow::Result<(u64, Vec<Delivery>)> {
        let mut tick = tokio::time::interval_at((Instant::now() + phase).into(), every);
        let mut sent = 0;
        while tick.tick().await.into_std() < until {
            let frame = json!({"type": "message", "text": format!("t{}", stamp(origin))});
            self.sender
                .send(Message::Text(frame.to_string().into()))
                .await?;
            sent += 1;
        }
        let last = json!({"type": "message", "text": END});
        self.sender
            .send(Message::Text(last.to_string().into()))
            .await?;
        let mut deliveries = Vec::new();
        for reader in self.readers {
            // A reader whose last message never comes is stopped, not waited for forever.
            match tokio::time::timeout(Duration::from_secs(10), reader).await {
                Ok(got) => deliveries.extend(got?),
                Err(_) => eprintln!("a chat reader did not see the last message"),
            }
        }
        Ok((sent, deliveries))
    }
}
