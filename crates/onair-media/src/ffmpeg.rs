//! ffmpeg and ffprobe for offline work (VOD ladders, clips, probes): optionally at a low
//! CPU priority, killed when the future running them is dropped, progress read from
//! `-progress pipe:1`, and the tail of stderr kept to explain a failure.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// Lines of stderr kept for an error message.
const TAIL_LINES: usize = 8;

/// Whether `nice` is on the PATH (coreutils; absent from some minimal images).
fn nice_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("nice").is_file()))
    })
}

/// `program`, through `nice -n <level>` when a level is given and `nice` is installed
/// (it execs the program, so killing the child kills the program).
fn command(program: &Path, nice: Option<i32>) -> Command {
    match nice.filter(|_| nice_available()) {
        Some(level) => {
            let mut command = Command::new("nice");
            command.arg("-n").arg(level.to_string()).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// An ffmpeg command that overwrites outputs, prints only errors and reports progress
/// on stdout; the caller adds inputs and outputs.
pub(crate) fn ffmpeg(program: &Path, nice: Option<i32>) -> Command {
    let mut command = command(program, nice);
    command
        .args(["-y", "-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(["-progress", "pipe:1", "-nostats"]);
    command
}

/// Runs an [`ffmpeg`] command to its end, reporting progress 0..1 against
/// `total_seconds` of output. Err carries the exit status and stderr's tail.
pub(crate) async fn run(
    mut command: Command,
    total_seconds: f64,
    progress: &mut (dyn FnMut(f64) + Send),
) -> Result<(), String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start ffmpeg: {e}"))?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let report = async {
        let Some(stdout) = stdout else { return };
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            // out_time_us: microseconds of output written so far (N/A before the first).
            let done = line
                .strip_prefix("out_time_us=")
                .and_then(|v| v.parse::<f64>().ok());
            if let Some(done) = done.filter(|_| total_seconds > 0.0) {
                progress((done / 1e6 / total_seconds).clamp(0.0, 1.0));
            }
        }
    };
    let ((), tail) = tokio::join!(report, tail(stderr));
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for ffmpeg: {e}"))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("ffmpeg {status}: {tail}")),
    }
}

/// The last lines a stream writes, joined.
async fn tail(stream: Option<impl AsyncRead + Unpin>) -> String {
    let mut kept = VecDeque::with_capacity(TAIL_LINES);
    if let Some(stream) = stream {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if kept.len() == TAIL_LINES {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    }
    Vec::from(kept).join(" | ")
}

/// ffprobe's JSON of `entries` (e.g. `stream=codec_type,height`) for the input given by
/// `input` (ffprobe input options, then `-i <path>`). Err: why ffprobe could not read it.
pub(crate) async fn probe<T: DeserializeOwned>(
    ffprobe: &Path,
    input: &[&OsStr],
    entries: &str,
) -> Result<T, String> {
    let output = Command::new(ffprobe)
        .args(["-v", "error", "-of", "json", "-show_entries", entries])
        .args(input)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run ffprobe: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("ffprobe {}: {}", output.status, stderr.trim()));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("ffprobe's output: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_failures_with_the_tail_of_stderr() {
        let mut command = ffmpeg(Path::new("ffmpeg"), Some(10));
        command.args(["-i", "/nonexistent/input.ts", "-f", "null", "-"]);
        let error = run(command, 1.0, &mut |_| {}).await.unwrap_err();
        assert!(error.contains("/nonexistent/input.ts"), "{error}");
        let missing = run(Command::new("/nonexistent/ffmpeg"), 1.0, &mut |_| {}).await;
        assert!(missing.unwrap_err().contains("cannot start"));
    }
}
