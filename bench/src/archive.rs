//! Archive processing (issue 13): how fast the VOD ladder is built on this machine, and
//! the live list's latency while two archives process versus idle, in one run (review
//! S5: transcoding must not slow the API).
//!
//! `onair_media::build_vod` runs the same ffmpeg children the archive job runs, on a
//! recording made the way the live ingest keeps one. The server runs in this process on
//! PostgreSQL (API only, as in foundation); the builds are this process's children, as
//! they are the server's when `onair serve` runs the job.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use onair_media::{RECORDING_PLAYLIST, VodSettings, build_vod, playlist_duration};
use sqlx::postgres::PgPoolOptions;
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::load::{self, Report, Target};
use crate::media::{TICKS_PER_SECOND, cpu_ticks};
use crate::server::{Role, serve_on};

pub struct Settings {
    pub recording_secs: u32,
    pub load: load::Settings,
    /// Also measure one thread and the `superfast` preset (realtime factor), and one
    /// thread under load.
    pub variants: bool,
}

/// Archives processing at once in the loaded windows.
const BUILDS: usize = 2;

/// 2 000 creators, 500 of them live and 10 000 past broadcasts: the live list pages
/// through real rows joined with their owners.
const SEED: &str = r#"
INSERT INTO users (id, username, email, password_hash, created_at, updated_at)
SELECT md5(i::text)::uuid, 'user' || i, 'user' || i || '@example.com', 'x', now(), now()
FROM generate_series(0, 1999) AS i;
INSERT INTO streams (id, user_id, title, status, started_at, ended_at, updated_at)
SELECT gen_random_uuid(), md5((i % 2000)::text)::uuid, 'past ' || i, 'ended',
       now() - (i || ' minutes')::interval, now() - (i || ' minutes')::interval + interval '1 hour', now()
FROM generate_series(1, 10000) AS i;
INSERT INTO streams (id, user_id, title, status, started_at, updated_at, viewer_count)
SELECT gen_random_uuid(), md5(i::text)::uuid, 'live ' || i, 'live', now() - (i || ' seconds')::interval, now(),
       (i * 7919) % 5000
FROM generate_series(1, 500) AS i;
ANALYZE;
"#;

/// Writes a `seconds`-long 720p30 recording into `dir` as the live ingest keeps one: a
/// copy of the encoder's stream (x264 veryfast at 4.5 Mb/s with a keyframe every 2 s,
/// OBS's defaults; AAC 160 kb/s) cut by ffmpeg's HLS muxer at the ingest's 1 s target
/// (so at every keyframe), every segment listed in an EVENT `recording.m3u8`.
async fn record(dir: &Path, seconds: u32) -> anyhow::Result<PathBuf> {
    tokio::fs::create_dir_all(dir).await?;
    let playlist = dir.join(RECORDING_PLAYLIST);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-b:v", "4500k", "-maxrate", "4500k", "-bufsize", "9000k"])
        .args(["-g", "60", "-keyint_min", "60", "-sc_threshold", "0"])
        .args(["-c:a", "aac", "-b:a", "160k", "-f", "hls", "-hls_time", "1"])
        .args(["-hls_list_size", "0", "-hls_playlist_type", "event"])
        .args([
            "-hls_flags",
            "independent_segments",
            "-hls_segment_filename",
        ])
        .arg(dir.join("seg_%05d.ts"))
        .arg(&playlist)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .context("running ffmpeg")?;
    ensure!(
        status.success(),
        "ffmpeg could not write the recording: {status}"
    );
    Ok(playlist)
}

/// Builds that run back to back in `BUILDS` slots until stopped, so that that many
/// archives are always processing.
struct Processing {
    slots: Vec<JoinHandle<()>>,
    /// Milliseconds of recording each slot has processed, over all its builds.
    processed: Vec<Arc<AtomicU64>>,
    finished: Arc<AtomicUsize>,
}

impl Processing {
    fn start(settings: &VodSettings, recording: &Path, recording_secs: f64, out: &Path) -> Self {
        let finished = Arc::new(AtomicUsize::new(0));
        let processed: Vec<_> = (0..BUILDS).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let slots = processed
            .iter()
            .enumerate()
            .map(|(slot, done)| {
                let (settings, recording) = (settings.clone(), recording.to_owned());
                let (out, done, finished) = (
                    out.join(format!("slot{slot}")),
                    done.clone(),
                    finished.clone(),
                );
                tokio::spawn(async move {
                    for attempt in 0.. {
                        let output = out.join(attempt.to_string());
                        let (done, mut last) = (done.clone(), 0);
                        let mut progress = move |fraction: f64| {
                            let now = (fraction * recording_secs * 1000.0) as u64;
                            done.fetch_add(now.saturating_sub(last), Ordering::Relaxed);
                            last = last.max(now);
                        };
                        if let Err(error) =
                            build_vod(&settings, &recording, &output, &mut progress).await
                        {
                            eprintln!("build failed: {error}");
                            return;
                        }
                        finished.fetch_add(1, Ordering::Relaxed);
                        let _ = tokio::fs::remove_dir_all(&output).await;
                    }
                })
            })
            .collect();
        Self {
            slots,
            processed,
            finished,
        }
    }

    /// Seconds of recording processed so far, all slots together.
    fn processed_secs(&self) -> f64 {
        let ms: u64 = self
            .processed
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .sum();
        ms as f64 / 1000.0
    }

    /// Waits until every slot's ffmpeg is encoding (has reported output).
    async fn encoding(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self
            .processed
            .iter()
            .any(|p| p.load(Ordering::Relaxed) == 0)
        {
            ensure!(
                Instant::now() < deadline,
                "the builds did not start within 60 s"
            );
            ensure!(
                !self.slots.iter().any(JoinHandle::is_finished),
                "a build failed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Stops the builds (their ffmpeg children are killed) and lets the machine settle.
    async fn stop(self) {
        for slot in self.slots {
            slot.abort();
            let _ = slot.await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// One realtime-factor measurement: a build alone.
struct Speed {
    name: &'static str,
    settings: VodSettings,
    renditions: Vec<String>,
    wall: Duration,
}

/// One load window on `GET /api/streams`.
struct Window {
    name: String,
    report: Report,
    /// Recording seconds processed per wall second over the load run, all builds.
    processing: Option<f64>,
    builds_finished: usize,
    /// % of one core over the load run.
    ffmpeg_cpu: f64,
    process_cpu: f64,
}

/// CPU ticks of the builds' ffmpeg so far: those running, plus every child this process
/// has reaped (`cutime` + `cstime`; build_vod waits for each ffmpeg, ffprobe and thumbnail
/// it starts), so a build that ends inside a window still counts.
fn build_ticks() -> u64 {
    let reaped = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // After the command name: state(3) … cutime(16) cstime(17).
            let fields: Vec<u64> = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .skip(13)
                .take(2)
                .filter_map(|f| f.parse().ok())
                .collect();
            Some(fields.iter().sum::<u64>())
        });
    cpu_ticks().transcoders + reaped.unwrap_or(0)
}

/// Runs the load once, with the given builds processing throughout (None: idle).
async fn window(
    name: String,
    target: &Target,
    load: &load::Settings,
    builds: Option<&Processing>,
) -> anyhow::Result<Window> {
    eprintln!("measuring {name}…");
    if let Some(builds) = builds {
        builds.encoding().await?;
    }
    let processed = builds.map(Processing::processed_secs);
    let finished = builds.map_or(0, |b| b.finished.load(Ordering::Relaxed));
    let (before, builds_before, clock) = (cpu_ticks(), build_ticks(), Instant::now());
    let report = load::run(target, load).await?;
    let (after, builds_after) = (cpu_ticks(), build_ticks());
    let elapsed = clock.elapsed().as_secs_f64();
    let percent = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / elapsed * 100.0;
    let mut processing = None;
    if let (Some(builds), Some(processed)) = (builds, processed) {
        ensure!(
            !builds.slots.iter().any(JoinHandle::is_finished),
            "a build failed during the window"
        );
        processing = Some((builds.processed_secs() - processed) / elapsed);
    }
    Ok(Window {
        name,
        report,
        processing,
        builds_finished: builds.map_or(0, |b| b.finished.load(Ordering::Relaxed) - finished),
        ffmpeg_cpu: percent(builds_after.saturating_sub(builds_before)),
        process_cpu: percent(after.server - before.server),
    })
}

/// An `ffmpeg` (and `ffprobe`) in `dir` running the real one under the SCHED_IDLE
/// policy (CPU only when nothing else wants it): VodSettings can only say `nice`, so the
/// benchmark tries the stronger policy through these wrappers.
async fn sched_idle(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    tokio::fs::create_dir_all(dir).await?;
    for tool in ["ffmpeg", "ffprobe"] {
        let path = dir.join(tool);
        let script = format!("#!/bin/sh\nexec chrt --idle 0 {tool} \"$@\"\n");
        tokio::fs::write(&path, script).await?;
        tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).await?;
    }
    Ok(dir.join("ffmpeg"))
}

fn describe(settings: &VodSettings) -> String {
    let nice = settings.nice.map_or("off".to_owned(), |n| n.to_string());
    format!(
        "threads {}, {}, nice {nice}",
        settings.threads, settings.preset
    )
}

/// This process's nice level (`stat` field 19), which ffmpeg's is relative to.
fn own_nice() -> String {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(16)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".into())
}

pub async fn run(db: onair_store::DbConfig, settings: Settings) -> anyhow::Result<()> {
    let load = &settings.load;
    let scratch = tempfile::tempdir()?;
    eprintln!("recording {} s of 720p30…", settings.recording_secs);
    let recording = record(&scratch.path().join("recording"), settings.recording_secs).await?;
    let secs = playlist_duration(&tokio::fs::read_to_string(&recording).await?);

    let default = VodSettings::default();
    let mut alone = vec![("default", default.clone())];
    if settings.variants {
        alone.push((
            "one thread",
            VodSettings {
                threads: 1,
                ..default.clone()
            },
        ));
        alone.push((
            "superfast",
            VodSettings {
                preset: "superfast".into(),
                ..default.clone()
            },
        ));
    }
    let mut speeds = Vec::new();
    for (n, (name, vod)) in alone.into_iter().enumerate() {
        eprintln!("building the VOD alone ({})…", describe(&vod));
        let output = scratch.path().join(format!("alone{n}"));
        let started = Instant::now();
        let built = build_vod(&vod, &recording, &output, &mut |_| {}).await?;
        let wall = started.elapsed();
        tokio::fs::remove_dir_all(&output).await?;
        speeds.push(Speed {
            name,
            settings: vod,
            renditions: built.renditions,
            wall,
        });
    }

    let store = onair_store::connect(&db).await?;
    store.migrate().await?;
    store.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await?;
    sqlx::raw_sql(SEED).execute(&pool).await?;
    pool.close().await;
    let (onair, _server) = serve_on(&db.url, Role::Api).await?;
    let target = Target::new("GET /api/streams", format!("http://{onair}/api/streams"));

    let mut processing = vec![
        ("default", default.clone()),
        (
            "nice off",
            VodSettings {
                nice: None,
                ..default.clone()
            },
        ),
    ];
    if settings.variants {
        processing.push((
            "one thread",
            VodSettings {
                threads: 1,
                ..default.clone()
            },
        ));
        let ffmpeg = sched_idle(&scratch.path().join("sched-idle")).await?;
        let idle = VodSettings {
            ffmpeg,
            nice: None,
            ..default.clone()
        };
        processing.push(("SCHED_IDLE (chrt --idle) instead of nice", idle));
    }
    // An idle window before and after each loaded one: the machine is shared, so each is
    // compared with the idle ones around it.
    let mut windows = vec![window("idle".into(), &target, load, None).await?];
    for (n, (name, vod)) in processing.iter().enumerate() {
        let out = scratch.path().join(format!("load{n}"));
        let builds = Processing::start(vod, &recording, secs, &out);
        let name = format!("{BUILDS} archives processing, {name} ({})", describe(vod));
        let measured = window(name, &target, load, Some(&builds)).await;
        builds.stop().await;
        windows.push(measured?);
        windows.push(window("idle".into(), &target, load, None).await?);
    }

    print_speeds(&speeds, secs);
    print_windows(&windows, load);
    Ok(())
}

fn print_speeds(speeds: &[Speed], secs: f64) {
    println!(
        "VOD build alone: a {secs:.0} s 720p30 recording (2 s GOP, 4.5 Mb/s) → source copy + encoded rungs; {} cores, load average at the end {}\n",
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("| settings | renditions | wall s | realtime factor |\n|---|---|---:|---:|");
    for speed in speeds {
        println!(
            "| {} ({}) | {} | {:.1} | {:.2}× |",
            speed.name,
            describe(&speed.settings),
            speed.renditions.join(", "),
            speed.wall.as_secs_f64(),
            secs / speed.wall.as_secs_f64()
        );
    }
    println!();
}

fn print_windows(windows: &[Window], load: &load::Settings) {
    println!(
        "GET /api/streams (500 live of 10 500 broadcasts), {} connections closed-loop, {} s per window after 1 s of warm-up; benchmark process nice {} (ffmpeg's nice is added to it)\n",
        load.concurrency,
        load.duration.as_secs(),
        own_nice()
    );
    println!(
        "| machine | requests | errors | req/s | p50 ms | p95 ms | p99 ms | p95 vs the idle windows around it | ≤ 1.5× (target) | processing × realtime (all builds) | builds finished | ffmpeg CPU | benchmark process CPU (server + load) |\n|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    );
    for (i, w) in windows.iter().enumerate() {
        let r = &w.report;
        // Loaded windows sit between two idle ones (see run).
        let around = (windows.get(i.wrapping_sub(1)), windows.get(i + 1));
        let (ratio, verdict) = match (w.processing, around) {
            (Some(_), (Some(before), Some(after))) => {
                let idle = (before.report.p95 + after.report.p95).as_secs_f64() / 2.0;
                let ratio = r.p95.as_secs_f64() / idle;
                let verdict = if ratio <= 1.5 { "yes" } else { "**no**" };
                (format!("{ratio:.2}×"), verdict)
            }
            _ => ("-".to_owned(), "-"),
        };
        println!(
            "| {} | {} | {ratio} | {verdict} | {} | {} | {:.0}% | {:.0}% |",
            w.name,
            r.cells(),
            w.processing.map_or("-".into(), |x| format!("{x:.2}×")),
            w.builds_finished,
            w.ffmpeg_cpu,
            w.process_cpu
        );
    }
}
