//! Live media: glass-to-glass latency (`glass.rs`), publish → playable latency, and CPU
//! per ingest.
//!
//! The server runs in this process (embedded SQLite) with the built-in RTMP ingest;
//! publishers are real ffmpeg processes sending a 720p30 test pattern with a keyframe
//! every second, as OBS does when told to.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// Linux reports CPU time in clock ticks of 1/100 s (USER_HZ) on every mainstream arch.
pub const TICKS_PER_SECOND: f64 = 100.0;

pub(crate) struct Platform {
    pub(crate) http: String,
    rtmp: String,
    srt: String,
    media_root: PathBuf,
    pub(crate) client: reqwest::Client,
    _data: tempfile::TempDir,
}

/// A publisher and the broadcast it feeds.
pub(crate) struct Broadcast {
    pub(crate) publisher: Child,
    pub(crate) stream_id: String,
}

impl Platform {
    async fn start(max_ingests: usize, ladder: Vec<u32>) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let app = crate::server::with_ingest(data.path(), max_ingests, ladder).await?;
        let platform = Self {
            http: format!("http://{}", app.local_addr()),
            rtmp: format!("rtmp://{}/live", app.rtmp_addr().context("RTMP enabled")?),
            srt: format!("srt://{}", app.srt_addr().context("SRT enabled")?),
            media_root: data.path().join("media"),
            client: reqwest::Client::new(),
            _data: data,
        };
        tokio::spawn(app.run_until(std::future::pending()));
        Ok(platform)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.http))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Ok(request.send().await?.error_for_status()?.json().await?)
    }

    /// A new creator's (user id, stream key).
    pub(crate) async fn creator(&self, name: &str) -> anyhow::Result<(String, String)> {
        let signup = json!({"username": name, "email": format!("{name}@bench.example"), "password": "benchmark password"});
        let session = self
            .call(reqwest::Method::POST, "/api/auth/signup", None, signup)
            .await?;
        let token = session["access_token"].as_str().context("token")?;
        let key = self
            .call(
                reqwest::Method::GET,
                "/api/me/stream-key",
                Some(token),
                Value::Null,
            )
            .await?;
        Ok((
            session["user_id"].as_str().context("id")?.to_owned(),
            key["stream_key"].as_str().context("key")?.to_owned(),
        ))
    }

    /// Starts publishing a `size` source as `user` over RTMP and waits until a player
    /// could start; returns the broadcast and the time from starting the encoder to
    /// playable.
    pub(crate) async fn go_live(
        &self,
        creator: (&str, &str),
        size: &str,
    ) -> anyhow::Result<(Broadcast, Duration)> {
        self.go_live_over(Ingest::Rtmp, creator, size).await
    }

    /// As [`Platform::go_live`], over `ingest`.
    pub(crate) async fn go_live_over(
        &self,
        ingest: Ingest,
        (user, key): (&str, &str),
        size: &str,
    ) -> anyhow::Result<(Broadcast, Duration)> {
        let started = Instant::now();
        let mut publisher = match ingest {
            Ingest::Rtmp => test_pattern(size, &format!("{}/{key}", self.rtmp)),
            // 120 ms of SRT latency (in microseconds), 7 TS packets a datagram: OBS's.
            Ingest::Srt => test_pattern_in(
                size,
                "mpegts",
                &format!(
                    "{}?streamid=publish:{key}&latency=120000&pkt_size=1316",
                    self.srt
                ),
            ),
        };
        let publisher = publisher.spawn().context("starting the ffmpeg publisher")?;
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(stream_id) = live_stream(&self.client, &self.http, user).await?
                && playable(&self.client, &self.http, &stream_id).await?
            {
                return Ok((
                    Broadcast {
                        publisher,
                        stream_id,
                    },
                    started.elapsed(),
                ));
            }
            if Instant::now() > deadline {
                bail!("not playable within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn segments(&self, stream_id: &str, rendition: &str) -> usize {
        let dir = self.media_root.join("live").join(stream_id).join(rendition);
        std::fs::read_dir(dir).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("seg_"))
                .count()
        })
    }
}

/// How an encoder reaches the platform.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ingest {
    Rtmp,
    Srt,
}

/// An ffmpeg publisher (not started) sending a `size` 30 fps test pattern with a tone to
/// the RTMP `url`, a keyframe every second, as OBS does when told to.
pub fn test_pattern(size: &str, url: &str) -> Command {
    test_pattern_in(size, "flv", url)
}

/// As [`test_pattern`], muxed as `format` (`flv` for RTMP, `mpegts` for SRT).
fn test_pattern_in(size: &str, format: &str, url: &str) -> Command {
    let mut command = Command::new("ffmpeg");
    command
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate=30"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", format])
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// The id of `user`'s latest broadcast on the server at `http` (`http://host:port`), if
/// it is live.
pub async fn live_stream(
    client: &reqwest::Client,
    http: &str,
    user: &str,
) -> anyhow::Result<Option<String>> {
    let page: Value = client
        .get(format!("{http}/api/users/{user}/streams?limit=1"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let latest = &page["data"][0];
    Ok((latest["status"] == "live")
        .then(|| latest["id"].as_str().map(str::to_owned))
        .flatten())
}

/// The master playlist is served and every rendition it names lists a segment.
pub async fn playable(
    client: &reqwest::Client,
    http: &str,
    stream_id: &str,
) -> anyhow::Result<bool> {
    let fetch = |path: String| async move {
        let response = client
            .get(format!("{http}/live/{stream_id}/{path}"))
            .send()
            .await?;
        anyhow::Ok(
            response
                .status()
                .is_success()
                .then_some(response.text().await?),
        )
    };
    let Some(master) = fetch("master.m3u8".into()).await? else {
        return Ok(false);
    };
    for rendition in master.lines().filter(|l| l.ends_with(".m3u8")) {
        if !fetch(rendition.to_owned())
            .await?
            .is_some_and(|p| p.contains("#EXTINF"))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// CPU ticks used so far by this process and by its children, by kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuTicks {
    /// This process: the server and whatever load runs in it.
    pub server: u64,
    /// ffmpeg children encoding a ladder (`-var_stream_map`): live transcoders, VOD builds.
    pub transcoders: u64,
    publishers: u64,
}

fn ticks_of(stat: &str) -> Option<(u32, u64)> {
    // pid (comm) state ppid … utime(14) stime(15): comm may hold spaces, so split after ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// User + system CPU ticks of the process whose `stat` file this is.
pub fn process_ticks(stat_path: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(stat_path)?;
    ticks_of(&stat)
        .map(|(_, ticks)| ticks)
        .context("unreadable stat")
}

pub fn cpu_ticks() -> CpuTicks {
    let me = std::process::id();
    let mut ticks = CpuTicks {
        server: std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(ticks_of)
            .map_or(0, |t| t.1),
        ..CpuTicks::default()
    };
    for (cmdline, used) in children(me) {
        if cmdline.contains("var_stream_map") {
            ticks.transcoders += used;
        } else if cmdline.contains("lavfi") {
            ticks.publishers += used;
        }
    }
    ticks
}

/// The command line and CPU ticks of each running child of process `parent`.
pub fn children(parent: u32) -> Vec<(String, u64)> {
    children_by_pid(parent).into_values().collect()
}

/// [`children`] by process id.
fn children_by_pid(parent: u32) -> std::collections::HashMap<u32, (String, u64)> {
    let mut found = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let path = entry.path();
        let (Ok(stat), Ok(cmdline)) = (
            std::fs::read_to_string(path.join("stat")),
            std::fs::read(path.join("cmdline")),
        ) else {
            continue;
        };
        let pid = entry.file_name().to_str().and_then(|p| p.parse().ok());
        if let (Some((ppid, used)), Some(pid)) = (ticks_of(&stat), pid)
            && ppid == parent
        {
            found.insert(pid, (String::from_utf8_lossy(&cmdline).into_owned(), used));
        }
    }
    found
}

/// The `p` percentile (0–1) of `sorted` samples, nearest rank; `sorted` must not be empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// The ladder before issue 17 (one 360p rung), the baseline of the CPU table.
const ONE_RUNG: [u32; 1] = [360];

pub async fn run(runs: usize, cpu_seconds: u64) -> anyhow::Result<()> {
    let default_ladder = onair_media::TranscodeSettings::default().ladder;
    let platform = Platform::start(8, default_ladder.clone()).await?;

    // Side by side: each run publishes the same input to OnAir, then to nginx-rtmp.
    let nginx = crate::nginx::NginxRtmp::start(1).await?;
    crate::glass::run(&platform, Duration::from_secs(20)).await?;

    eprintln!("publish → playable, {runs} runs each on OnAir and nginx-rtmp…");
    let (mut latencies, mut baseline) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for run in 0..runs {
        let (user, key) = platform.creator(&format!("latency{run}")).await?;
        let (mut broadcast, elapsed) = platform.go_live((&user, &key), "1280x720").await?;
        latencies.push(elapsed);
        broadcast.publisher.kill().await?;
        let name = format!("latency{run}");
        baseline.push(
            nginx
                .publish_to_playable(&platform.client, &name, "1280x720")
                .await?,
        );
    }
    latencies.sort();
    baseline.sort();
    let secs = |d: Duration| format!("{:.2}", d.as_secs_f64());
    let verdict = |ok: bool| if ok { "yes" } else { "**no**" };
    println!("Publish → playable ({runs} runs each, 720p30 source, 1 s keyframes, alternating)\n");
    println!(
        "| server | renditions | p50 s | p95 s | max s | p95 < 2.5 s (target) | p95 < 3 s (review SLA) |\n|---|---|---:|---:|---:|---|---|"
    );
    for (server, renditions, sorted) in [
        ("OnAir", "source + 480p + 360p", &latencies),
        ("nginx-rtmp (baseline)", "source, repackaged", &baseline),
    ] {
        let p95 = percentile(sorted, 0.95);
        println!(
            "| {server} | {renditions} | {} | {} | {} | {} | {} |",
            secs(percentile(sorted, 0.50)),
            secs(p95),
            secs(sorted[sorted.len() - 1]),
            verdict(p95 < Duration::from_millis(2_500)),
            verdict(p95 < Duration::from_secs(3))
        );
    }
    let ratio =
        |p: f64| percentile(&latencies, p).as_secs_f64() / percentile(&baseline, p).as_secs_f64();
    println!(
        "\nOnAir / nginx-rtmp: p50 {:.2}×, p95 {:.2}× (issue 17's target: at most 1.1×; p95 {})\n",
        ratio(0.50),
        ratio(0.95),
        verdict(ratio(0.95) <= 1.1)
    );

    println!(
        "CPU per ingest over {cpu_seconds} s (% of one core; the machine has {} cores)\n",
        std::thread::available_parallelism()?
    );
    println!(
        "| ladder | source | renditions | concurrent ingests | transcoder per ingest | server process | publishers (load, not server) | 360p segments produced / expected |\n|---|---|---|---:|---:|---:|---:|---:|"
    );
    let baseline = Platform::start(8, ONE_RUNG.to_vec()).await?;
    for (ladder, platform) in [
        ("360 (issue 4, baseline)", &baseline),
        ("720/480/360", &platform),
    ] {
        for size in ["1280x720", "1920x1080"] {
            for concurrent in [1, 2] {
                let row = (ladder, size, concurrent);
                cpu_row(platform, row, Duration::from_secs(cpu_seconds)).await?;
            }
        }
    }
    Ok(())
}

/// One row of the CPU table: `concurrent` publishers of a `size` source, measured over
/// `window` once all are playable.
async fn cpu_row(
    platform: &Platform,
    (ladder, size, concurrent): (&str, &str, usize),
    window: Duration,
) -> anyhow::Result<()> {
    let mut live = Vec::new();
    for n in 0..concurrent {
        let name = format!("cpu{}x{size}x{n}", live_count());
        let (user, key) = platform.creator(&name).await?;
        live.push(platform.go_live((&user, &key), size).await?.0);
    }
    let renditions = std::fs::read_dir(platform.media_root.join("live").join(&live[0].stream_id))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .count();
    let segments = |live: &[Broadcast]| -> usize {
        live.iter()
            .map(|b| platform.segments(&b.stream_id, "360p"))
            .sum()
    };
    // Only this row's transcoders (their command line names the broadcast), per process:
    // those of earlier rows may still be flushing, or exit inside the window.
    let ids: Vec<&str> = live.iter().map(|b| b.stream_id.as_str()).collect();
    let transcoders = || -> std::collections::HashMap<u32, u64> {
        children_by_pid(std::process::id())
            .into_iter()
            .filter(|(_, (cmdline, _))| ids.iter().any(|id| cmdline.contains(id)))
            .map(|(pid, (_, ticks))| (pid, ticks))
            .collect()
    };
    let segments_before = segments(&live);
    let (before, transcoders_before, clock) = (cpu_ticks(), transcoders(), Instant::now());
    tokio::time::sleep(window).await;
    let (after, transcoders_after) = (cpu_ticks(), transcoders());
    let window = clock.elapsed().as_secs_f64();
    let segments_after = segments(&live);
    let transcoding: u64 = transcoders_after
        .iter()
        .map(|(pid, ticks)| ticks.saturating_sub(*transcoders_before.get(pid).unwrap_or(&0)))
        .sum();
    let percent = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / window * 100.0;
    println!(
        "| {ladder} | {size} | {renditions} | {concurrent} | {:.0}% | {:.0}% | {:.0}% | {} / {:.0} |",
        percent(transcoding) / concurrent as f64,
        percent(after.server.saturating_sub(before.server)),
        percent(after.publishers.saturating_sub(before.publishers)),
        segments_after - segments_before,
        window * concurrent as f64
    );
    for mut broadcast in live {
        broadcast.publisher.kill().await?;
    }
    // Let the ingests wind down before the next row.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}

/// A new number each call: creators' names stay unique across rows.
fn live_count() -> usize {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_cpu_ticks_past_a_command_name_with_spaces() {
        let stat = "42 (ff mpeg) S 7 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(super::ticks_of(stat), Some((7, 300)));
    }

    #[test]
    fn percentiles() {
        let sorted: Vec<_> = (1..=20).map(std::time::Duration::from_secs).collect();
        assert_eq!(super::percentile(&sorted, 0.5).as_secs(), 10);
        assert_eq!(super::percentile(&sorted, 0.95).as_secs(), 19);
    }
}
