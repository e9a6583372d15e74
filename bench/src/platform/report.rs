//! The platform scenario's Markdown tables: the SLA figures per topology beside the
//! targets of docs/SLA.md, then each node process's CPU and memory.

use std::time::Duration;

use super::Settings;
use super::audience::Watched;
use super::nodes::Topology;
use crate::load::Report;
use crate::media::percentile;

/// One topology's figures.
pub struct Measured {
    pub topology: Topology,
    pub api: Report,
    /// Stream starts: the steady publishers' (one after another, before the load) and the
    /// cycling publisher's (under the load).
    pub starts: (Vec<Duration>, Vec<Duration>),
    pub chat: Chat,
    pub watched: Watched,
    pub nodes: Vec<NodeUsage>,
    /// The load generator's own CPU (this process), share of a core.
    pub load_cpu: f64,
}

pub struct Chat {
    pub sent: u64,
    /// Messages sent times the readers in their channel.
    pub expected: u64,
    /// Deliveries that arrived after the window closed.
    pub late: usize,
    /// Each delivery's send → receive latency, µs.
    pub latencies: Vec<u32>,
}

pub struct NodeUsage {
    pub roles: &'static str,
    /// Shares of one core over the window: the node process, its transcoders.
    pub cpu: f64,
    pub transcoders: f64,
    /// Peak resident memory over the window, bytes.
    pub rss: u64,
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn s(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// `p` percentiles of `samples` by `show`, joined by " / ", or "-" without samples.
fn percentiles(samples: &[Duration], ps: &[f64], show: fn(Duration) -> String) -> String {
    if samples.is_empty() {
        return "-".into();
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let shown: Vec<String> = ps.iter().map(|&p| show(percentile(&sorted, p))).collect();
    shown.join(" / ")
}

pub fn print(settings: &Settings, measured: &[Measured]) {
    println!(
        "Full platform, {} s per topology: {} publishers live throughout ({} test pattern, transcoded to the ladder){}, {} HLS viewers and {} chat readers per channel, {} chat messages/s per channel, {} API requests/s; one {}-core machine runs every node and the load\n",
        settings.seconds,
        settings.publishers,
        settings.size,
        if settings.cycling {
            format!(" + 1 going live every {} s", super::HOLD.as_secs() + 2)
        } else {
            String::new()
        },
        settings.viewers,
        settings.chatters,
        settings.chat_rate,
        settings.api_rate,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let mut header = "| figure | SLA target |".to_owned();
    let mut rule = "|---|---|".to_owned();
    for m in measured {
        header.push_str(&format!(" {} |", m.topology.label()));
        rule.push_str("---:|");
    }
    println!("{header}\n{rule}");
    let row = |figure: &str, target: &str, cell: &dyn Fn(&Measured) -> String| {
        let cells: Vec<String> = measured.iter().map(cell).collect();
        println!("| {figure} | {target} | {} |", cells.join(" | "));
    };
    let three = [0.5, 0.95, 0.99];
    row(
        "API browsing p50 / p95 / p99 ms (requests, errors)",
        "p95 < 200, p99 < 500",
        &|m| {
            let [p50, p95, p99] = m.api.percentiles();
            format!(
                "{} / {} / {} ({}, {:.2}%)",
                ms(p50),
                ms(p95),
                ms(p99),
                m.api.requests(),
                100.0 * m.api.error_share()
            )
        },
    );
    row("viewer heartbeat p50 / p95 / p99 ms", "(API)", &|m| {
        percentiles(&m.watched.heartbeats, &three, ms)
    });
    row(
        "stream start p50 / p95 s, before the load (n)",
        "p95 < 3",
        &|m| {
            format!(
                "{} ({})",
                percentiles(&m.starts.0, &[0.5, 0.95], s),
                m.starts.0.len()
            )
        },
    );
    row(
        "stream start p50 / p95 s, under the load (n)",
        "p95 < 3",
        &|m| {
            format!(
                "{} ({})",
                percentiles(&m.starts.1, &[0.5, 0.95], s),
                m.starts.1.len()
            )
        },
    );
    row(
        "chat delivery p50 / p95 / p99 ms (messages sent; delivered / expected; after the window)",
        "p95 < 100",
        &|m| {
            let chat = &m.chat;
            let as_durations: Vec<Duration> = chat
                .latencies
                .iter()
                .map(|&us| Duration::from_micros(us.into()))
                .collect();
            format!(
                "{} ({}; {} / {}; {})",
                percentiles(&as_durations, &three, ms),
                chat.sent,
                chat.latencies.len(),
                chat.expected,
                chat.late
            )
        },
    );
    row("HLS playlist fetch p50 / p95 ms (n)", "", &|m| {
        let p = &m.watched.playlists;
        format!("{} ({})", percentiles(p, &[0.5, 0.95], ms), p.len())
    });
    row("HLS segment fetch p50 / p95 ms (n)", "", &|m| {
        let p = &m.watched.segments;
        format!("{} ({})", percentiles(p, &[0.5, 0.95], ms), p.len())
    });
    row("viewer errors (failed fetches, heartbeats)", "", &|m| {
        m.watched.errors.to_string()
    });
    row("load generator CPU (this process), % of a core", "", &|m| {
        format!("{:.0}%", m.load_cpu * 100.0)
    });

    println!(
        "\nNode processes over the window: CPU as % of one core (the node, its ffmpeg transcoders apart) and peak resident memory\n"
    );
    println!(
        "| topology | node roles | node CPU | transcoders CPU | peak RSS MB |\n|---|---|---:|---:|---:|"
    );
    for m in measured {
        for node in &m.nodes {
            println!(
                "| {} | {} | {:.0}% | {:.0}% | {:.0} |",
                m.topology.label(),
                node.roles,
                node.cpu * 100.0,
                node.transcoders * 100.0,
                node.rss as f64 / 1_048_576.0
            );
        }
    }
}
