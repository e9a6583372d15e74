//! A login flood: `requests` failed logins sent at once to a server process, and its
//! resident memory before, at the peak during, and after. Password hashing bounded (one
//! hash per core, the default) against the bound lifted (`max_concurrent_hashes` as
//! large as the flood: every hash at once, as before the bound), each on a fresh node.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::node::Node;

pub struct Settings {
    pub requests: usize,
    /// How long after the flood "after" is measured (the blocking pool's idle threads
    /// exit after 10 s).
    pub settle: Duration,
}

struct Row {
    name: String,
    idle_mb: f64,
    peak_mb: f64,
    after_mb: f64,
    /// The allocator's heap in use, idle and after: what is held, not merely retained.
    heap_idle_mb: f64,
    heap_after_mb: f64,
    refused: usize,
    rejected: usize,
    other: usize,
    p50: Duration,
    p99: Duration,
    wall: Duration,
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let unbounded = settings.requests.to_string();
    let mut rows = Vec::new();
    for (name, slots) in [
        ("bounded: one hash per core (default)", "0"),
        ("no bound: every hash at once", unbounded.as_str()),
    ] {
        eprintln!("{name}…");
        rows.push(flood(name, slots, &settings).await?);
    }
    println!(
        "\n{} parallel failed logins; resident memory (RSS) and heap in use of the server process (MB)\n",
        settings.requests
    );
    println!(
        "| {:<38} | {:>7} | {:>8} | {:>8} | {:>9} | {:>10} | {:>5} | {:>5} | {:>5} | {:>8} | {:>8} | {:>8} |",
        "password hashing",
        "idle",
        "peak",
        "after",
        "heap idle",
        "heap after",
        "401",
        "503",
        "other",
        "p50",
        "p99",
        "all done"
    );
    println!(
        "|{:-<40}|{:->9}|{:->10}|{:->10}|{:->11}|{:->12}|{:->7}|{:->7}|{:->7}|{:->10}|{:->10}|{:->10}|",
        "", "", "", "", "", "", "", "", "", "", "", ""
    );
    for r in rows {
        println!(
            "| {:<38} | {:>7.1} | {:>8.1} | {:>8.1} | {:>9.1} | {:>10.1} | {:>5} | {:>5} | {:>5} | {:>6.0}ms | {:>6.0}ms | {:>7.2}s |",
            r.name,
            r.idle_mb,
            r.peak_mb,
            r.after_mb,
            r.heap_idle_mb,
            r.heap_after_mb,
            r.refused,
            r.rejected,
            r.other,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.wall.as_secs_f64(),
        );
    }
    Ok(())
}

async fn flood(name: &str, slots: &str, settings: &Settings) -> anyhow::Result<Row> {
    let data = tempfile::tempdir()?;
    let mut node = Node::start(
        data.path(),
        None,
        &[
            ("ONAIR_MAX_CONCURRENT_HASHES", slots),
            ("ONAIR_LOG", "error"),
        ],
    )
    .await?;
    let base = format!("http://{}", node.http);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(settings.requests)
        .timeout(Duration::from_secs(120))
        .build()?;
    let signup = json!({"username": "flooded", "email": "flooded@example.com",
        "password": "correct horse battery"});
    let response = client
        .post(format!("{base}/api/auth/signup"))
        .json(&signup)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "signup: {}",
        response.status()
    );
    // As many logins at once as there are cores first, in both modes: the idle level
    // is that of a node that has served logins (the bounded hashing keeps one working
    // memory per core from then on).
    let wrong = json!({"login": "flooded", "password": "wrong password!"});
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let login = || {
        let url = format!("{base}/api/auth/login");
        client.post(url).json(&wrong).send()
    };
    futures_util::future::try_join_all((0..cores).map(|_| login())).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = node.usage().await?;

    let started = Instant::now();
    let logins: Vec<_> = (0..settings.requests)
        .map(|_| {
            let (client, url, body) = (
                client.clone(),
                format!("{base}/api/auth/login"),
                wrong.clone(),
            );
            tokio::spawn(async move {
                let sent = Instant::now();
                let status = client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                (status.unwrap_or(0), sent.elapsed())
            })
        })
        .collect();
    let mut peak = idle.rss;
    while !logins.iter().all(tokio::task::JoinHandle::is_finished) {
        peak = peak.max(node.usage().await?.rss);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = started.elapsed();
    let (mut refused, mut rejected, mut other, mut latencies) = (0, 0, 0, Vec::new());
    for login in logins {
        let (status, latency) = login.await?;
        match status {
            401 => refused += 1,
            503 => rejected += 1,
            _ => other += 1,
        }
        latencies.push(latency);
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    // Its idle connections closed, as the flood's would be.
    drop(client);
    tokio::time::sleep(settings.settle).await;
    let after = node.usage().await?;
    let mb = |bytes: u64| bytes as f64 / 1e6;
    Ok(Row {
        name: name.to_owned(),
        idle_mb: mb(idle.rss),
        peak_mb: mb(peak),
        after_mb: mb(after.rss),
        heap_idle_mb: mb(idle.heap),
        heap_after_mb: mb(after.heap),
        refused,
        rejected,
        other,
        p50: at(0.5),
        p99: at(0.99),
        wall,
    })
}
