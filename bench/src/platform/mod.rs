//! The whole platform under one mixed load (issue 16): real `onair serve` processes on
//! one PostgreSQL database and one Redis, ffmpeg publishers into the built-in RTMP
//! ingest (each transcoded), HLS viewers with heartbeats, chat sockets in the live
//! channels, and API browsing at a fixed rate — all at once, for a fixed window, in two
//! topologies under the same load: one node with every role (the baseline), and a node
//! per role (api + chat, ingest, worker). Both share this machine's cores with each other
//! and with the load: splitting adds processes, not hardware.
//!
//! Measured: API latency (p50/p95/p99, error share), stream start (encoder started →
//! master playlist and a segment of every rendition served), chat delivery (send →
//! every reader), HLS playlist and segment fetches, viewer heartbeats, and each node
//! process's CPU (its transcoders apart) and resident memory.

mod audience;
mod broadcasts;
mod nodes;
mod report;

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::chat::client as chat_client;
use crate::load::run_mix_at_rate;
use audience::{Room, Watched, watch};
use broadcasts::{Creator, go_live, sign_up};
use nodes::{Cluster, Topology};
use report::{Chat, Measured, NodeUsage};

pub struct Settings {
    pub postgres_url: String,
    pub redis_url: String,
    /// Seconds of measurement per topology.
    pub seconds: u64,
    /// Creators live for the whole window (each watched and chatted in).
    pub publishers: usize,
    /// Whether one more creator goes live again and again during the window, to measure
    /// stream start under load.
    pub cycling: bool,
    /// The test pattern's size (`WxH`).
    pub size: String,
    /// HLS viewers per live channel.
    pub viewers: usize,
    /// Chat readers per live channel.
    pub chatters: usize,
    /// Chat messages per second per channel.
    pub chat_rate: f64,
    /// API requests per second (a mix of pages).
    pub api_rate: u32,
}

/// How long each cycling go-live stays live.
const HOLD: Duration = Duration::from_secs(8);

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    crate::server::onair_binary()?;
    let settings = &settings;
    let mut measured = Vec::new();
    for topology in [Topology::OneNode, Topology::ByRole] {
        eprintln!("{}: starting…", topology.label());
        let outcome =
            onair_store::testing::with_postgres(&settings.postgres_url, |db| async move {
                measure(topology, &db.url, settings).await
            })
            .await?;
        measured.push(outcome);
        // Let the machine settle (transcoders gone, archives built) before the next.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    report::print(settings, &measured);
    Ok(())
}

async fn measure(
    topology: Topology,
    database_url: &str,
    settings: &Settings,
) -> anyhow::Result<Measured> {
    let cluster = Cluster::start(topology, database_url, &settings.redis_url).await?;
    let client = reqwest::Client::new();
    let api = cluster.api().to_owned();
    let window = Duration::from_secs(settings.seconds);
    // Enough fresh creators for the cycling go-lives (each takes HOLD and its start).
    let cycles = if settings.cycling {
        (settings.seconds / (HOLD.as_secs() + 2)) as usize + 1
    } else {
        0
    };
    let mut creators = Vec::new();
    for n in 0..settings.publishers + cycles {
        creators.push(sign_up(&client, &api, n).await?);
    }
    let cyclers = creators.split_off(settings.publishers);

    let mut starts = Vec::new();
    let mut lives = Vec::new();
    for creator in &creators {
        let (live, took) = go_live(&client, &api, cluster.rtmp(), &settings.size, creator).await?;
        eprintln!("  live after {:.2} s", took.as_secs_f64());
        starts.push(took);
        lives.push(live);
    }
    let origin = Instant::now();
    let mut rooms = Vec::new();
    for creator in &creators {
        rooms.push(
            Room::open(
                cluster.chat(),
                &creator.id,
                &creator.token,
                settings.chatters,
                origin,
            )
            .await?,
        );
    }
    let urls = browse_urls(&client, &api, &creators, &lives).await?;

    eprintln!("  measuring for {} s…", settings.seconds);
    let start = Instant::now();
    let until = start + window;
    let before = usage(&cluster)?;
    let load_before = crate::media::process_ticks("/proc/self/stat")?;
    let browsing = tokio::spawn({
        let urls = urls.clone();
        let rate = settings.api_rate;
        async move { run_mix_at_rate("API browsing", &urls, rate, window).await }
    });
    let mut viewers = Vec::new();
    for (c, live) in lives.iter().enumerate() {
        for v in 0..settings.viewers {
            // Spread over a second, as players joining at different times would be.
            let at = start + Duration::from_secs_f64(v as f64 / settings.viewers as f64);
            viewers.push(tokio::spawn(watch(
                client.clone(),
                api.clone(),
                live.stream_id.clone(),
                c + v,
                (at, until),
            )));
        }
    }
    let every = Duration::from_secs_f64(1.0 / settings.chat_rate);
    let talking: Vec<_> = rooms
        .into_iter()
        .enumerate()
        .map(|(n, room)| {
            let phase = every.mul_f64(n as f64 / creators.len() as f64);
            tokio::spawn(room.talk(every, phase, until, origin))
        })
        .collect();
    let cycling = tokio::spawn(broadcasts::cycle(
        client.clone(),
        (
            api.clone(),
            cluster.rtmp().to_owned(),
            settings.size.clone(),
        ),
        cyclers,
        HOLD,
        until,
    ));
    let mut peak_rss = vec![0u64; cluster.nodes.len()];
    while Instant::now() < until {
        for (peak, node) in peak_rss.iter_mut().zip(&cluster.nodes) {
            *peak = (*peak).max(node.rss()?);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let after = usage(&cluster)?;
    let load_ticks = crate::media::process_ticks("/proc/self/stat")? - load_before;

    let mut watched = Watched::default();
    for viewer in viewers {
        watched.merge(viewer.await??);
    }
    let window_end = chat_client::micros(origin, until);
    let (mut sent, mut deliveries, mut expected) = (0, Vec::new(), 0);
    for room in talking {
        let (n, got) = room.await??;
        sent += n;
        expected += n * settings.chatters as u64;
        deliveries.extend(got);
    }
    let loaded_starts = cycling.await??;
    let api_report = browsing.await??;
    let seconds = start.elapsed().as_secs_f64().max(window.as_secs_f64());
    let nodes = cluster
        .nodes
        .iter()
        .zip(before.iter().zip(&after))
        .zip(&peak_rss)
        .map(|((node, (b, a)), &rss)| NodeUsage {
            roles: node.roles,
            cpu: ticks_to_share(a.0 - b.0, seconds),
            transcoders: ticks_to_share(a.1 - b.1, seconds),
            rss,
        })
        .collect();
    drop(lives);
    Ok(Measured {
        topology,
        api: api_report,
        starts: (starts, loaded_starts),
        chat: Chat {
            sent,
            expected,
            late: deliveries
                .iter()
                .filter(|d| d.received > window_end)
                .count(),
            latencies: deliveries.iter().map(|d| d.latency).collect(),
        },
        watched,
        nodes,
        load_cpu: ticks_to_share(load_ticks, seconds),
    })
}

/// CPU ticks over `seconds` as a share of one core.
fn ticks_to_share(ticks: u64, seconds: f64) -> f64 {
    ticks as f64 / crate::media::TICKS_PER_SECOND / seconds
}

/// Every node's CPU ticks (its own, its children's).
fn usage(cluster: &Cluster) -> anyhow::Result<Vec<(u64, u64)>> {
    cluster.nodes.iter().map(|n| n.cpu_ticks()).collect()
}

/// The pages a visitor browses: the live list, a channel (by name, its latest stream),
/// a stream, a profile, a channel's archives and the archive list — one of each per live
/// channel, requested in turn.
async fn browse_urls(
    client: &reqwest::Client,
    api: &str,
    creators: &[Creator],
    lives: &[broadcasts::Live],
) -> anyhow::Result<Vec<String>> {
    let mut urls = vec![format!("{api}/api/streams"), format!("{api}/api/archives")];
    for (creator, live) in creators.iter().zip(lives) {
        let profile: serde_json::Value = client
            .get(format!("{api}/api/users/{}", creator.id))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let name = profile["username"].as_str().context("username")?;
        urls.extend([
            format!("{api}/api/users/by-username/{name}"),
            format!("{api}/api/users/{}/streams?limit=1", creator.id),
            format!("{api}/api/streams/{}", live.stream_id),
            format!("{api}/api/users/{}", creator.id),
            format!("{api}/api/users/{}/archives", creator.id),
            format!("{api}/api/streams"),
        ]);
    }
    Ok(urls)
}
