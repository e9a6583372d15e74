//! Serving the HLS and the preview image that ingest writes under the media root.

use axum::body::Body;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::Media;
use crate::error::{ApiError, ErrorBody, Path};

/// As long as a preview lasts (`onair_media::PREVIEW_SECONDS`).
const PREVIEW_CACHE_CONTROL: &str = "public, max-age=10";

/// A live broadcast's master playlist (`master.m3u8`).
#[utoipa::path(get, path = "/live/{stream_id}/{file}", tag = "media",
    params(("stream_id" = Uuid, Path), ("file" = String, Path, description = "`master.m3u8`")),
    responses((status = 200, description = "HLS master playlist", body = String, content_type = "application/vnd.apple.mpegurl"),
        (status = 404, body = ErrorBody), (status = 503, description = "`service_unavailable`: the media store", body = ErrorBody)))]
pub(super) async fn hls_master(
    State(media): State<Arc<Media>>,
    Path((stream_id, file)): Path<(Uuid, String)>,
) -> Result<Response, ApiError> {
    serve_hls(&media, stream_id, &[&file]).await
}

/// A rendition's playlist (`index.m3u8`) or segment (`seg_00001.ts`).
#[utoipa::path(get, path = "/live/{stream_id}/{rendition}/{file}", tag = "media",
    params(("stream_id" = Uuid, Path), ("rendition" = String, Path, description = "`source` or `360p`"),
        ("file" = String, Path, description = "`index.m3u8` or a segment")),
    responses((status = 200, description = "HLS playlist or MPEG-TS segment", content(
            (String = "application/vnd.apple.mpegurl"), (String = "video/mp2t"))),
        (status = 404, body = ErrorBody), (status = 503, description = "`service_unavailable`: the media store", body = ErrorBody)))]
pub(super) async fn hls_rendition(
    State(media): State<Arc<Media>>,
    Path((stream_id, rendition, file)): Path<(Uuid, String, String)>,
) -> Result<Response, ApiError> {
    serve_hls(&media, stream_id, &[&rendition, &file]).await
}

/// A still of the live broadcast, 320 px wide, replaced every ~10 s while it is live
/// (the `preview_url` of a live stream).
#[utoipa::path(get, path = "/live/{stream_id}/preview.jpg", tag = "media",
    params(("stream_id" = Uuid, Path)),
    responses((status = 200, description = "JPEG image", body = Vec<u8>, content_type = "image/jpeg"),
        (status = 404, body = ErrorBody), (status = 503, description = "`service_unavailable`: the media store", body = ErrorBody)))]
pub(super) async fn preview_image(
    State(media): State<Arc<Media>>,
    Path(stream_id): Path<Uuid>,
) -> Result<Response, ApiError> {
    serve_hls(&media, stream_id, &[onair_media::PREVIEW_IMAGE]).await
}

/// Playlists change every segment and are never cached; segments never change; the
/// preview may be cached as long as it lasts.
async fn serve_hls(media: &Media, stream_id: Uuid, parts: &[&str]) -> Result<Response, ApiError> {
    let file = parts.last().copied().unwrap_or_default();
    let (content_type, cache_control) = if file.ends_with(".m3u8") {
        ("application/vnd.apple.mpegurl", "no-cache")
    } else if file.ends_with(".ts") {
        ("video/mp2t", "public, max-age=31536000, immutable")
    } else if parts == [onair_media::PREVIEW_IMAGE] {
        ("image/jpeg", PREVIEW_CACHE_CONTROL)
    } else {
        return Err(ApiError::NotFound("media file"));
    };
    // Plain file names only: no traversal, no hidden files.
    let plain = |p: &&str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    };
    if !parts.iter().all(plain) {
        return Err(ApiError::NotFound("media file"));
    }
    let key = format!("{}/{}", onair_media::live_key(stream_id), parts.join("/"));
    let bytes = match media.files.get(&key).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(ApiError::NotFound("media file")),
        Err(e) => {
            tracing::warn!(error = %e, "media store read failed");
            return Err(ApiError::Unavailable);
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}
