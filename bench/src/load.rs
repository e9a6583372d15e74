//! A closed-loop HTTP load generator: `concurrency` workers each send a request, wait for
//! the answer, and repeat, for a fixed time. Reports throughput and latency percentiles.

use std::time::{Duration, Instant};

pub struct Settings {
    pub duration: Duration,
    pub concurrency: usize,
}

pub struct Target {
    pub name: String,
    url: String,
}

impl Target {
    pub fn new(name: impl Into<String>, url: String) -> Self {
        Self {
            name: name.into(),
            url,
        }
    }
}

pub struct Report {
    name: String,
    requests: usize,
    errors: usize,
    per_second: f64,
    p50: Duration,
    pub p95: Duration,
    p99: Duration,
}

const WARM_UP: Duration = Duration::from_secs(1);

pub async fn run(target: &Target, settings: &Settings) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(settings.concurrency)
        .build()?;
    let response = client.get(&target.url).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{}: {}",
        target.name,
        response.status()
    );

    let warm_until = Instant::now() + WARM_UP;
    let stop_at = warm_until + settings.duration;
    let workers: Vec<_> = (0..settings.concurrency)
        .map(|_| {
            let (client, url) = (client.clone(), target.url.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < stop_at {
                    let sent = Instant::now();
                    let ok = match client.get(&url).send().await {
                        Ok(response) => {
                            response.status().is_success() && response.bytes().await.is_ok()
                        }
                        Err(_) => false,
                    };
                    if sent >= warm_until {
                        if ok {
                            latencies.push(sent.elapsed())
                        } else {
                            errors += 1
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (l, e) = worker.await?;
        latencies.extend(l);
        errors += e;
    }
    Ok(Report::of(
        &target.name,
        latencies,
        errors,
        settings.duration,
    ))
}

/// Open loop: `rate` requests a second for `duration` (after a second of warm-up),
/// each sent when due whatever the earlier ones take, and timed from when it was due, so
/// a stall shows in the percentiles instead of slowing the load (no coordinated
/// omission).
pub async fn run_at_rate(target: &Target, rate: u32, duration: Duration) -> anyhow::Result<Report> {
    run_mix_at_rate(
        &target.name,
        std::slice::from_ref(&target.url),
        rate,
        duration,
    )
    .await
}

/// [`run_at_rate`] over several URLs, each request the next one in turn: a mix of pages
/// at one combined rate, reported as one target named `name`.
pub async fn run_mix_at_rate(
    name: &str,
    urls: &[String],
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let period = Duration::from_secs(1) / rate;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let warm_until = Instant::now() + WARM_UP;
    let stop_at = warm_until + duration;
    let mut sent = tokio::task::JoinSet::new();
    for url in urls.iter().cycle() {
        let due = tick.tick().await.into_std();
        if due >= stop_at {
            break;
        }
        let (client, url) = (client.clone(), url.clone());
        sent.spawn(async move {
            let ok = match client.get(&url).send().await {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            (due >= warm_until).then(|| ok.then(|| due.elapsed()))
        });
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    while let Some(outcome) = sent.join_next().await {
        match outcome? {
            Some(Some(latency)) => latencies.push(latency),
            Some(None) => errors += 1,
            None => {}
        }
    }
    Ok(Report::of(name, latencies, errors, duration))
}

impl Report {
    fn of(name: &str, mut latencies: Vec<Duration>, errors: usize, window: Duration) -> Self {
        latencies.sort_unstable();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Self {
            name: name.to_owned(),
            requests: latencies.len(),
            errors,
            per_second: latencies.len() as f64 / window.as_secs_f64(),
            p50: pct(0.50),
            p95: pct(0.95),
            p99: pct(0.99),
        }
    }

    /// Failed requests as a share of all requests sent in the window.
    pub fn error_share(&self) -> f64 {
        self.errors as f64 / (self.requests + self.errors).max(1) as f64
    }

    /// Successful requests in the window.
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// The latency percentiles p50, p95 and p99 of the successful requests.
    pub fn percentiles(&self) -> [Duration; 3] {
        [self.p50, self.p95, self.p99]
    }

    /// The Markdown cells `requests | errors | req/s | p50 ms | p95 ms | p99 ms`.
    pub fn cells(&self) -> String {
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
        format!(
            "{} | {} | {:.0} | {} | {} | {}",
            self.requests,
            self.errors,
            self.per_second,
            ms(self.p50),
            ms(self.p95),
            ms(self.p99)
        )
    }

    /// A Markdown table under `heading`; the last column compares throughput with the
    /// first row.
    pub fn table(reports: &[Report], heading: &str) -> String {
        let ceiling = reports.first().map_or(1.0, |r| r.per_second);
        let mut out = format!(
            "{heading}\n\n| target | requests | errors | req/s | p50 ms | p95 ms | p99 ms | vs first row |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        );
        for r in reports {
            out.push_str(&format!(
                "| {} | {} | {:.1}% |\n",
                r.name,
                r.cells(),
                100.0 * r.per_second / ceiling
            ));
        }
        out
    }
}
