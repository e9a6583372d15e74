//! LL-HLS on the serving side (RFC 8216bis §6.2.5): a blocking playlist reload
//! (`_HLS_msn`, `_HLS_part`) is held until the playlist holds that segment or part, and a
//! request for the part the playlist hints (not written yet) until it exists; each for
//! at most three target durations as first read (and never past 6 s). Both read the
//! media store, so any node serves them.

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

/// How long a request is held at most: three target durations of the playlist as first
/// read (RFC 8216bis §6.2.5.2), never past this.
const HOLD_LIMIT: Duration = Duration::from_secs(6);
/// Parts a request may ask for beyond the playlist's last (its Advance Part Limit).
const ADVANCE_PARTS: u64 = 3;

/// A live playlist as a blocking reload is answered.
pub(super) struct Reloaded {
    pub(super) playlist: Bytes,
    /// It holds what the request asked for (so it may be cached by the request's query).
    pub(super) holds_request: bool,
}

/// The live playlist at `key` as `reload` asks for it: at once without `_HLS_msn`, else
/// once it holds that segment or part, or has stopped growing (then as it is, which does
/// not hold the request). 400 for a part without a segment, or a segment or part too
/// far ahead; 503 `part_not_ready` when the hold runs out.
pub(super) async fn playlist(
    files: &MediaStore,
    key: &str,
    reload: &BlockingReload,
) -> Result<Reloaded, ApiError> {
    let Some(msn) = reload.msn else {
        if reload.part.is_some() {
            return Err(ApiError::InvalidQuery("_HLS_part needs _HLS_msn".into()));
        }
        let playlist = fetch(files, key).await?;
        return Ok(Reloaded {
            playlist,
            holds_request: false,
        });
    };
    let started = Instant::now();
    let mut limit = None;
    loop {
        let playlist = fetch(files, key).await?;
        let edge = LiveEdge::of(&String::from_utf8_lossy(&playlist));
        let holds_request = edge.has(msn, reload.part);
        if holds_request || !edge.growing() {
            return Ok(Reloaded {
                playlist,
                holds_request,
            });
        }
        let parts_ahead = msn == edge.open_segment
            && reload
                .part
                .is_some_and(|part| part >= edge.open_parts + ADVANCE_PARTS);
        if msn > edge.open_segment + 2 || parts_ahead {
            return Err(ApiError::InvalidQuery(format!(
                "_HLS_msn {msn} (_HLS_part {:?}) is too far after the playlist's last segment ({}, {} parts)",
                reload.part, edge.open_segment, edge.open_parts
            )));
        }
        let limit = *limit.get_or_insert_with(|| hold_limit(&edge));
        if started.elapsed() >= limit {
            return Err(ApiError::PartNotReady);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Three target durations of `edge`'s playlist, at most [`HOLD_LIMIT`].
fn hold_limit(edge: &LiveEdge) -> Duration {
    Duration::from_secs(3 * edge.target_seconds).min(HOLD_LIMIT)
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
    let edge = LiveEdge::of(&String::from_utf8_lossy(&playlist));
    if edge.hinted.as_deref() != Some(name) {
        return Err(not_found());
    }
    let limit = hold_limit(&edge);
    let started = Instant::now();
    while started.elapsed() < limit {
        tokio::time::sleep(POLL).await;
        if let Some(part) = files.get(key).await? {
            return Ok(part);
        }
    }
    Err(ApiError::PartNotReady)
}
