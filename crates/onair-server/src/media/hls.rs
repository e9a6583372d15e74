//! Serving the HLS and the preview image that ingest writes under the media root.

use axum::body::{Body, Bytes};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use onair_core::StreamStatus;
use onair_infra::MediaStore;
use onair_media::{LIVE_PLAYLIST, RECORDING_PLAYLIST};
use uuid::Uuid;

use super::Media;
use super::access::{Grant, MediaQuery};
use super::lowlatency::{self, BlockingReload};
use crate::error::{ApiError, ErrorBody, Path, Query};

/// As long as a preview lasts (`onair_media::PREVIEW_SECONDS`).
const PREVIEW_CACHE_CONTROL: &str = "public, max-age=10";

/// A live broadcast's master playlist (`master.m3u8`), or the master over its
/// recording (`recording.m3u8`, an archive's `playlist_url` until it is processed).
#[utoipa::path(get, path = "/live/{stream_id}/{file}", tag = "media",
    params(("stream_id" = Uuid, Path), ("file" = String, Path, description = "`master.m3u8` or `recording.m3u8`"), MediaQuery),
    responses((status = 200, description = "HLS master playlist", body = String, content_type = "application/vnd.apple.mpegurl"),
        (status = 404, body = ErrorBody), (status = 503, description = "`service_unavailable`: the media store", body = ErrorBody)))]
pub(super) async fn hls_master(
    State(media): State<Arc<Media>>,
    Path((stream_id, file)): Path<(Uuid, String)>,
    Query(query): Query<MediaQuery>,
) -> Result<Response, ApiError> {
    serve_hls(
        &media,
        stream_id,
        &[&file],
        query,
        &BlockingReload::default(),
    )
    .await
}

/// A rendition's LL-HLS playlist (`index.m3u8`; with `_HLS_msn`/`_HLS_part`, held until
/// it holds that segment or part), its recording (`recording.m3u8`: every segment of the
/// broadcast, closed once it has ended), a segment (`seg_00001.m4s`), a part
/// (`part_00000_00004.m4s`; the one the playlist hints is held until it is written) or
/// an initialization (`init_00000.mp4`).
#[utoipa::path(get, path = "/live/{stream_id}/{rendition}/{file}", tag = "media",
    params(("stream_id" = Uuid, Path), ("rendition" = String, Path, description = "`source` or a rung of the ladder below it (`720p`, `480p`, `360p`)"),
        ("file" = String, Path, description = "`index.m3u8`, `recording.m3u8`, a segment, a part or an initialization"), MediaQuery, BlockingReload),
    responses((status = 200, description = "HLS playlist, CMAF segment, part or initialization (an archive's VOD: MPEG-TS)", content(
            (String = "application/vnd.apple.mpegurl"), (String = "video/iso.segment"), (String = "video/mp4"), (String = "video/mp2t"))),
        (status = 400, description = "`invalid_query`: `_HLS_part` without `_HLS_msn`, or `_HLS_msn` more than two segments ahead", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, description = "`part_not_ready`: a blocking request's segment or part did not appear within three target durations; `service_unavailable`: the media store or the database", body = ErrorBody)))]
pub(super) async fn hls_rendition(
    State(media): State<Arc<Media>>,
    Path((stream_id, rendition, file)): Path<(Uuid, String, String)>,
    Query(query): Query<MediaQuery>,
    Query(reload): Query<BlockingReload>,
) -> Result<Response, ApiError> {
    serve_hls(&media, stream_id, &[&rendition, &file], query, &reload).await
}

/// A still of the live broadcast, 320 px wide, replaced every ~10 s while it is live
/// (the `preview_url` of a live stream).
#[utoipa::path(get, path = "/live/{stream_id}/preview.jpg", tag = "media",
    params(("stream_id" = Uuid, Path), MediaQuery),
    responses((status = 200, description = "JPEG image", body = Vec<u8>, content_type = "image/jpeg"),
        (status = 404, body = ErrorBody), (status = 503, description = "`service_unavailable`: the media store", body = ErrorBody)))]
pub(super) async fn preview_image(
    State(media): State<Arc<Media>>,
    Path(stream_id): Path<Uuid>,
    Query(query): Query<MediaQuery>,
) -> Result<Response, ApiError> {
    let image = [onair_media::PREVIEW_IMAGE];
    serve_hls(&media, stream_id, &image, query, &BlockingReload::default()).await
}

/// Playlists change every part and are never cached, except a blocking reload's answer
/// that holds what its query asked for; segments, parts and initializations never change;
/// the preview may be cached as long as it lasts. A recording playlist of a broadcast
/// that has ended is served closed. A private archive's recording needs its token.
async fn serve_hls(
    media: &Media,
    stream_id: Uuid,
    parts: &[&str],
    query: MediaQuery,
    reload: &BlockingReload,
) -> Result<Response, ApiError> {
    let file = parts.last().copied().unwrap_or_default();
    let (content_type, mut cache_control) = if file.ends_with(".m3u8") {
        (PLAYLIST, "no-cache")
    } else if file.ends_with(".ts") {
        (SEGMENT, IMMUTABLE)
    } else if file.ends_with(".m4s") {
        (CMAF_SEGMENT, IMMUTABLE)
    } else if file.ends_with(".mp4") && parts.len() == 2 {
        (CMAF_INIT, IMMUTABLE)
    } else if parts == [onair_media::PREVIEW_IMAGE] {
        (JPEG, PREVIEW_CACHE_CONTROL)
    } else {
        return Err(ApiError::NotFound("media file"));
    };
    let prefix = onair_media::live_key(stream_id);
    let key = object_key(&prefix, parts)?;
    let grant = media
        .access
        .broadcast(stream_id, query.token.as_deref())
        .await?;
    let mut bytes = match parts {
        [_, LIVE_PLAYLIST] => {
            let reloaded = lowlatency::playlist(&media.held, &key, reload).await?;
            if reloaded.holds_request {
                cache_control = BLOCKING_RELOAD;
            }
            reloaded.playlist
        }
        [rendition, part] if part.starts_with("part_") => {
            let playlist = object_key(&prefix, &[rendition, LIVE_PLAYLIST])?;
            lowlatency::part(&media.held, &key, &playlist).await?
        }
        _ => fetch(&media.files, &key).await?,
    };
    // A rendition's recording (not the master over them) is an EVENT playlist while
    // the broadcast may go on.
    if parts.len() == 2 && file == RECORDING_PLAYLIST && ended(media, stream_id).await? {
        bytes = close_playlist(&bytes);
    }
    Ok(granted(&grant, content_type, cache_control, bytes))
}

/// A blocking reload's answer holds at least what its query asked for, whenever it is
/// served: CDNs may keep it (players never ask for the same one twice).
const BLOCKING_RELOAD: &str = "public, max-age=6";
const CMAF_SEGMENT: &str = "video/iso.segment";
const CMAF_INIT: &str = "video/mp4";

pub(crate) const PLAYLIST: &str = "application/vnd.apple.mpegurl";
pub(crate) const SEGMENT: &str = "video/mp2t";
pub(crate) const JPEG: &str = "image/jpeg";
pub(crate) const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The object key `prefix/part/…`, for plain file names only: no traversal, no hidden
/// files.
pub(crate) fn object_key(prefix: &str, parts: &[&str]) -> Result<String, ApiError> {
    let plain = |p: &&str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    };
    if !parts.iter().all(plain) {
        return Err(ApiError::NotFound("media file"));
    }
    Ok(format!("{prefix}/{}", parts.join("/")))
}

/// The object at `key`: 404 when absent, 503 when the media store fails.
pub(crate) async fn fetch(files: &MediaStore, key: &str) -> Result<Bytes, ApiError> {
    match files.get(key).await {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(ApiError::NotFound("media file")),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn respond(
    content_type: &'static str,
    cache_control: &'static str,
    body: Bytes,
) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            ),
        ],
        Body::from(body),
    )
        .into_response()
}

/// `body` as `grant`'s holder is served it: a playlist with its token on every URI, and
/// private media kept out of shared caches.
pub(super) fn granted(
    grant: &Grant,
    content_type: &'static str,
    cache_control: &'static str,
    body: Bytes,
) -> Response {
    let body = if content_type == PLAYLIST {
        grant.playlist(body)
    } else {
        body
    };
    respond(content_type, grant.cache_control(cache_control), body)
}

/// Whether broadcast `stream_id` has ended (its recording is complete).
async fn ended(media: &Media, stream_id: Uuid) -> Result<bool, ApiError> {
    let stream = media.broadcasts.streams.stream(stream_id).await?;
    Ok(stream.is_some_and(|s| s.status == StreamStatus::Ended))
}

/// An EVENT playlist made a finished one: VOD type and an end tag.
fn close_playlist(playlist: &[u8]) -> Bytes {
    let text = String::from_utf8_lossy(playlist);
    let mut closed = text.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD");
    if !closed.contains("#EXT-X-ENDLIST") {
        if !closed.is_empty() && !closed.ends_with('\n') {
            closed.push('\n');
        }
        closed.push_str("#EXT-X-ENDLIST\n");
    }
    Bytes::from(closed)
}

#[cfg(test)]
mod tests {
    use super::close_playlist;

    #[test]
    fn an_event_playlist_is_closed_once() {
        let event = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:1.0,\nseg_00000.ts";
        let closed = close_playlist(event.as_bytes());
        assert_eq!(
            &closed[..],
            b"#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:1.0,\nseg_00000.ts\n#EXT-X-ENDLIST\n"
        );
        assert_eq!(close_playlist(&closed), closed, "already closed");
    }
}
