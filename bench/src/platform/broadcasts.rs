//! Creators, their ffmpeg publishers, and stream start: from starting the encoder to a
//! master playlist whose every rendition lists a segment, on the API node.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::process::Child;

use super::chat_client::{Endpoint, creator};
use crate::media::{live_stream, playable, test_pattern};

/// A signed-up creator: the channel (user id), an access token and a stream key.
pub struct Creator {
    pub id: String,
    pub token: String,
    key: String,
}

/// Signs up creator `n` on the API node (`http://…`).
pub async fn sign_up(client: &reqwest::Client, api: &str, n: usize) -> anyhow::Result<Creator> {
    // Each topology has a database of its own: the same names serve every run.
    let server = Endpoint::local(api.trim_start_matches("http://"));
    let (id, token) = creator(&server, "platform", n).await?;
    let key: Value = client
        .get(format!("{api}/api/me/stream-key"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let key = key["stream_key"].as_str().context("stream key")?.to_owned();
    Ok(Creator { id, token, key })
}

/// A live broadcast and the encoder feeding it (stopped when dropped).
pub struct Live {
    pub stream_id: String,
    _publisher: Child,
}

/// Starts publishing a `size` test pattern as `creator` to the ingest at `rtmp`, and
/// waits until the broadcast is playable from `api`: returns it and the time it took.
pub async fn go_live(
    client: &reqwest::Client,
    api: &str,
    rtmp: &str,
    size: &str,
    creator: &Creator,
) -> anyhow::Result<(Live, Duration)> {
    let started = Instant::now();
    let publisher = test_pattern(size, &format!("{rtmp}/{}", creator.key))
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting the ffmpeg publisher")?;
    let deadline = started + Duration::from_secs(30);
    loop {
        // An answer refused under load (a 503) is a "not yet": the player would retry.
        if let Ok(Some(stream_id)) = live_stream(client, api, &creator.id).await
            && playable(client, api, &stream_id).await.unwrap_or(false)
        {
            let live = Live {
                stream_id,
                _publisher: publisher,
            };
            return Ok((live, started.elapsed()));
        }
        if Instant::now() > deadline {
            bail!("not playable within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Go-lives one after another until `until`, each by a fresh creator from `creators`,
/// live for `hold` then stopped: stream start measured under the load. Returns each
/// go-live's time to playable (one that fails is reported and skipped).
pub async fn cycle(
    client: reqwest::Client,
    (api, rtmp, size): (String, String, String),
    creators: Vec<Creator>,
    hold: Duration,
    until: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let mut took = Vec::new();
    for creator in &creators {
        if Instant::now() + hold > until {
            break;
        }
        let (live, elapsed) = match go_live(&client, &api, &rtmp, &size, creator).await {
            Ok(went) => went,
            Err(why) => {
                eprintln!("  a go-live under load failed: {why}");
                continue;
            }
        };
        took.push(elapsed);
        tokio::time::sleep(hold).await;
        drop(live);
    }
    Ok(took)
}
