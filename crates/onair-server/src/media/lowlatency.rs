//! LL-HLS on the serving side (RFC 8216bis §6.2.5): a blocking playlist reload
//! (`_HLS_msn`, `_HLS_part`) is held until the playlist holds that segment or part, and a
//! request for the part the playlist hints (not written yet) until it exists; each for
//! at most three target durations. Both read the media store, so any node serves them.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use onair_infra::MediaStore;
use onair_media::LiveEdge;
use serde::Deserialize;
use utoipa::IntoParams;

use super::fetch;
use crate::error::ApiError;

/// How often a held request looks again.
const POLL: Duration = Duration::from_millis(20);

/// A blocking playlist reload's query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct BlockingReload {
    /// LL-HLS: answer once the playlist holds this media sequence number.
    #[serde(rename = "_HLS_msn")]
    #[param(rename = "_HLS_msn")]
    msn: Option<u64>,
    /// LL-HLS, with `_HLS_msn`: once it holds this part of that segment.
    #[serde(rename = "_HLS_part")]
    #[param(rename = "_HLS_part")]
    part: Option<u64>,
}

impl BlockingReload {
    /// Whether the request blocks (its answer may then be cached by its query).
    pub(super) fn blocks(&self) -> bool {
        self.msn.is_some()
    }
}

/// The live playlist at `key` as `reload` asks for it: at once without `_HLS_msn`, else
/// once it holds that segment or part, or has stopped growing. 400 for a part without a
/// segment or a segment more than two ahead; 503 `part_not_ready` after three target
/// durations.
pub(super) async fn playlist(
    files: &MediaStore,
    key: &str,
    reload: &BlockingReload,
) -> Result<Bytes, ApiError> {
    let Some(msn) = reload.msn else {
        if reload.part.is_some() {
            return Err(ApiError::InvalidQuery("_HLS_part needs _HLS_msn".into()));
        }
        return fetch(files, key).await;
    };
    let started = Instant::now();
    loop {
        let playlist = fetch(files, key).await?;
        let edge = LiveEdge::of(&String::from_utf8_lossy(&playlist));
        if edge.has(msn, reload.part) || !edge.growing {
            return Ok(playlist);
        }
        if msn > edge.open_segment + 2 {
            return Err(ApiError::InvalidQuery(format!(
                "_HLS_msn {msn} is more than two segments after the playlist's last ({})",
                edge.open_segment
            )));
        }
        if started.elapsed() >= Duration::from_secs(3 * edge.target_seconds) {
            return Err(ApiError::PartNotReady);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The part at `key`; if it is not there yet but its rendition's playlist (`playlist_key`)
/// hints it as the next part, once it is written.
pub(super) async fn part(
    files: &MediaStore,
    key: &str,
    playlist_key: &str,
) -> Result<Bytes, ApiError> {
    let not_found = || ApiError::NotFound("media file");
    match files.get(key).await {
        Ok(Some(part)) => return Ok(part),
        Ok(None) => {}
        Err(e) => return Err(e.into()),
    }
    let name = key.rsplit('/').next().unwrap_or_default();
    let playlist = fetch(files, playlist_key).await?;
    let playlist = String::from_utf8_lossy(&playlist);
    let hinted = playlist
        .lines()
        .filter(|line| line.starts_with("#EXT-X-PRELOAD-HINT:"))
        .any(|line| line.contains(&format!("URI=\"{name}\"")));
    if !hinted {
        return Err(not_found());
    }
    let limit = Duration::from_secs(3 * LiveEdge::of(&playlist).target_seconds);
    let started = Instant::now();
    while started.elapsed() < limit {
        tokio::time::sleep(POLL).await;
        if let Some(part) = files.get(key).await? {
            return Ok(part);
        }
    }
    Err(ApiError::PartNotReady)
}
