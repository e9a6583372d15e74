//! The notify scenario's Markdown tables.

use std::time::Duration;

use super::golive::{Busy, GoLiveLatency};
use super::store_level::Naive;
use super::worker::Watched;
use crate::server::FanOut;

pub struct Tables<'a> {
    pub batches: &'a [(u32, Duration)],
    pub sweep_size: i64,
    pub defaults: &'a FanOut,
    /// Per size: followers, (store-level batched time, parts), the naive loop.
    pub sizes: &'a [(i64, (Duration, usize), Option<Naive>)],
    /// Per size, the same fan-out through an `onair worker`.
    pub runner: &'a [Watched],
    pub golive: &'a GoLiveLatency,
    pub queue: &'a [(usize, Vec<f64>)],
}

fn s(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

pub fn print_tables(t: &Tables) {
    println!("Fan-out of {} followers by batch size\n", t.sweep_size);
    println!("| batch | seconds | rows/s |\n|---:|---:|---:|");
    for (batch, took) in t.batches {
        println!(
            "| {batch} | {} | {:.0} |",
            s(*took),
            t.sweep_size as f64 / took.as_secs_f64()
        );
    }
    print_sizes(t);
    print_golive(t.golive, t.sizes.last().map_or(0, |row| row.0));
    println!("\nQueue throughput (no-op jobs, claimed in batches and completed in batches)\n");
    println!("| runners | jobs/s, run 1 | run 2 | run 3 |\n|---:|---:|---:|---:|");
    for (runners, rates) in t.queue {
        let rates: Vec<String> = rates.iter().map(|rate| format!("{rate:.0}")).collect();
        println!("| {runners} | {} |", rates.join(" | "));
    }
}

fn print_sizes(t: &Tables) {
    println!(
        "\nFan-out time: batched ({} per statement; parts of {}) through the store and through an `onair worker`'s job runner (unpaced; it looks for jobs other processes enqueued every {} ms), vs the naive loop (one INSERT per follower); every commit with synchronous_commit = off\n",
        t.defaults.batch,
        t.defaults.part_size,
        crate::server::default_jobs_poll_ms()
    );
    println!(
        "| followers | parts | store s | store rows/s | job runner s | job picked up after s | naive s | naive rows/s | speed-up (store vs naive) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for ((n, (batched, parts), naive), runner) in t.sizes.iter().zip(t.runner) {
        let batched_rate = *n as f64 / batched.as_secs_f64();
        let (naive_s, naive_rate, speedup) = match naive {
            Some(naive) => {
                let rate = naive.done as f64 / naive.took.as_secs_f64();
                let label = if naive.finished {
                    s(naive.took)
                } else {
                    format!("stopped at {} rows after {}", naive.done, s(naive.took))
                };
                (
                    label,
                    format!("{rate:.0}"),
                    format!("{:.0}×", batched_rate / rate),
                )
            }
            None => ("not run (over budget)".into(), "-".into(), "-".into()),
        };
        println!(
            "| {n} | {parts} | {} | {batched_rate:.0} | {} | {} | {naive_s} | {naive_rate} | {speedup} |",
            s(*batched),
            s(runner.fan_out),
            s(runner.picked_up),
        );
    }
}

fn print_golive(golive: &GoLiveLatency, followers: i64) {
    println!(
        "\nGo-live request (POST /api/streams/start) latency, a creator with 0 followers vs one with {followers}, while that one's go-live fans out\n"
    );
    println!(
        "| node | creator | fan-out rate limit rows/s | fan-out s (picked up after s) | requests | p50 ms | p95 ms | p99 ms | p95 vs 0 followers, idle |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let row = |node: &str,
               creator: String,
               run: Option<&Busy>,
               samples: &[Duration],
               base: &[Duration]| {
        let (limit, fan_out) = run.map_or(("-".into(), "-".into()), |run| {
            (
                run.rate.to_string(),
                format!(
                    "{} ({})",
                    s(run.fan_out.picked_up + run.fan_out.fan_out),
                    s(run.fan_out.picked_up)
                ),
            )
        });
        println!(
            "| {node} | {creator} | {limit} | {fan_out} | {} | {} | {} | {} | {:.2}× |",
            samples.len(),
            ms(percentile(samples, 0.5)),
            ms(percentile(samples, 0.95)),
            ms(percentile(samples, 0.99)),
            percentile(samples, 0.95).as_secs_f64() / percentile(base, 0.95).as_secs_f64()
        );
    };
    let api = "API + `onair worker` process";
    let zero = &golive.api_zero;
    row(api, "0 followers, idle".into(), None, zero, zero);
    for run in &golive.api {
        row(
            api,
            "0 followers, during the fan-out".into(),
            Some(run),
            &run.quiet,
            zero,
        );
        row(
            api,
            format!("{followers} followers, during its fan-out"),
            Some(run),
            &run.popular,
            zero,
        );
    }
    let serve = "serve (API + jobs in one process)";
    let zero = &golive.serve_zero;
    row(serve, "0 followers, idle".into(), None, zero, zero);
    for run in &golive.serve {
        row(
            serve,
            format!("{followers} followers, during its fan-out"),
            Some(run),
            &run.popular,
            zero,
        );
    }
}
