//! The chat benchmark's tables: every run, idle memory, and OnAir against the baseline.

use super::cluster::Memory;
use super::{Outcome, Server, Settings};

#[derive(Default)]
pub struct Results {
    /// At `--rate`, per server.
    pub fixed: Vec<Outcome>,
    /// At `--saturation-rate`, per server.
    pub saturation: Vec<Outcome>,
    pub memory: Vec<Memory>,
}

/// Deliveries per second inside the measured window.
fn throughput(settings: &Settings, o: &Outcome) -> f64 {
    o.in_window as f64 / settings.seconds as f64
}

fn ms(us: u32) -> String {
    format!("{:.1}", f64::from(us) / 1000.0)
}

fn kb(bytes: f64) -> String {
    format!("{:.1} KB", bytes / 1024.0)
}

fn or_dash<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "—".to_owned(), show)
}

pub fn print(settings: &Settings, results: &Results) {
    println!(
        "{} sockets in {} rooms ({} per room), {} s per run\n",
        settings.sockets,
        settings.rooms,
        settings.sockets / settings.rooms,
        settings.seconds
    );
    runs(settings, &results.fixed);
    runs(settings, &results.saturation);
    println!(
        "Idle server memory per socket ({} sockets, before any message; over all processes)\n",
        settings.sockets
    );
    println!("| server | rooms | RSS growth per socket | heap in use growth per socket |");
    println!("|---|---:|---:|---:|");
    for m in &results.memory {
        println!(
            "| {} | {} | {} | {} |",
            m.server,
            m.rooms,
            or_dash(m.growth, |g| kb(g.rss)),
            or_dash(m.growth, |g| kb(g.heap))
        );
    }
    println!();
    comparison(settings, results);
}

fn runs(settings: &Settings, outcomes: &[Outcome]) {
    let Some(first) = outcomes.first() else {
        return;
    };
    println!(
        "{} messages/s ({} deliveries/s asked)\n",
        first.rate,
        settings.deliveries(first.rate)
    );
    println!(
        "| server | messages sent | deliveries in the window | after it (last at +s) | expected | deliveries/s in the window | p50 ms | p95 ms | p99 ms | server-side p99 ms | server CPU (% of a core) | load generator CPU |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for o in outcomes {
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.0}% |",
            o.server,
            o.sent,
            o.in_window,
            match o.after_window {
                0 => "0".to_owned(),
                late => format!("{late} (+{:.2})", o.drained_after.as_secs_f64()),
            },
            o.expected,
            throughput(settings, o),
            ms(o.p50),
            ms(o.p95),
            ms(o.p99),
            or_dash(o.server_p99_ms, |p| format!("≤ {p}")),
            or_dash(o.server_cpu, |c| format!("{c:.0}%")),
            o.load_cpu
        );
    }
    println!();
}

fn pick<'a>(outcomes: &'a [Outcome], is: &dyn Fn(&Server) -> bool) -> Option<&'a Outcome> {
    outcomes.iter().find(|o| is(&o.server))
}

/// One node of OnAir against the baseline, beside the targets: p99 no worse at `--rate`,
/// ≥ 3× the saturation throughput, < 10 KB per idle socket.
fn comparison(settings: &Settings, results: &Results) {
    let is_onair = |s: &Server| matches!(s, Server::OnAir { nodes: 1 });
    let is_baseline = |s: &Server| matches!(s, Server::Baseline);
    let (Some(onair), Some(baseline)) = (
        pick(&results.fixed, &is_onair),
        pick(&results.fixed, &is_baseline),
    ) else {
        return;
    };
    println!("OnAir (1 node) against the Node ws baseline\n");
    println!("| figure | OnAir | baseline | OnAir / baseline | target |");
    println!("|---|---:|---:|---:|---|");
    let asked = settings.deliveries(settings.rate);
    for (name, a, b, target) in [
        ("p50", onair.p50, baseline.p50, ""),
        ("p95", onair.p95, baseline.p95, ""),
        ("p99", onair.p99, baseline.p99, "≤ baseline"),
    ] {
        println!(
            "| {name} ms at {asked} deliveries/s | {} | {} | {:.2} | {target} |",
            ms(a),
            ms(b),
            f64::from(a) / f64::from(b.max(1))
        );
    }
    if let (Some(a), Some(b)) = (
        pick(&results.saturation, &is_onair),
        pick(&results.saturation, &is_baseline),
    ) {
        let (a, b) = (throughput(settings, a), throughput(settings, b));
        println!(
            "| deliveries/s at {} asked (saturation) | {a:.0} | {b:.0} | {:.2} | ≥ 3 |",
            settings.deliveries(settings.saturation_rate.unwrap_or_default()),
            a / b.max(1.0)
        );
    }
    for m in results.memory.iter().filter(|m| is_onair(&m.server)) {
        let base = results
            .memory
            .iter()
            .find(|b| is_baseline(&b.server) && b.rooms == m.rooms);
        let (Some(a), Some(b)) = (m.growth, base.and_then(|b| b.growth)) else {
            continue;
        };
        println!(
            "| idle memory per socket, {} room(s): RSS / heap | {} / {} | {} / {} | {:.2} / {:.2} | < 10 KB |",
            m.rooms,
            kb(a.rss),
            kb(a.heap),
            kb(b.rss),
            kb(b.heap),
            a.rss / b.rss,
            a.heap / b.heap
        );
    }
    println!();
}
