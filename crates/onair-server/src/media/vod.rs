//! Serving archives' final VODs from the object store. Every processing attempt writes
//! under a fresh `<version>`, so nothing under a version ever changes: caches may keep
//! it long.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use uuid::Uuid;

use super::Media;
use super::access::MediaQuery;
use super::hls::{IMMUTABLE, JPEG, PLAYLIST, fetch, granted, object_key};
use crate::error::{ApiError, ErrorBody, Path, Query};

/// Playlists of a version: long-lived, but not marked immutable so a client that was
/// handed a broken one can still revalidate.
pub(crate) const VOD_PLAYLIST_CACHE: &str = "public, max-age=86400";

/// An archive's master playlist (`master.m3u8`) or thumbnail (`thumbnail.jpg`).
#[utoipa::path(get, path = "/vod/{archive_id}/{version}/{file}", tag = "media",
    params(("archive_id" = Uuid, Path), ("version" = Uuid, Path, description = "the processing attempt that published it"),
        ("file" = String, Path, description = "`master.m3u8` or `thumbnail.jpg`"), MediaQuery),
    responses((status = 200, description = "HLS master playlist or JPEG thumbnail", content(
            (String = "application/vnd.apple.mpegurl"), (Vec<u8> = "image/jpeg"))),
        (status = 404, body = ErrorBody), (status = 503, description = "`service_unavailable`: the media store", body = ErrorBody)))]
pub(super) async fn vod_file(
    State(media): State<Arc<Media>>,
    Path((archive_id, version, file)): Path<(Uuid, Uuid, String)>,
    Query(query): Query<MediaQuery>,
) -> Result<Response, ApiError> {
    serve_vod(&media, archive_id, version, &[&file], query).await
}

/// A rendition's playlist (`index.m3u8`) or segment.
#[utoipa::path(get, path = "/vod/{archive_id}/{version}/{rendition}/{file}", tag = "media",
    params(("archive_id" = Uuid, Path), ("version" = Uuid, Path), ("rendition" = String, Path, description = "`source`, `720p`…"),
        ("file" = String, Path, description = "`index.m3u8` or a segment (`.ts`, `.m4s`, `.mp4` init)"), MediaQuery),
    responses((status = 200, description = "HLS playlist or media segment", content(
            (String = "application/vnd.apple.mpegurl"), (Vec<u8> = "video/mp2t"), (Vec<u8> = "video/iso.segment"), (Vec<u8> = "video/mp4"))),
        (status = 404, body = ErrorBody), (status = 503, description = "`service_unavailable`: the media store", body = ErrorBody)))]
pub(super) async fn vod_rendition(
    State(media): State<Arc<Media>>,
    Path((archive_id, version, rendition, file)): Path<(Uuid, Uuid, String, String)>,
    Query(query): Query<MediaQuery>,
) -> Result<Response, ApiError> {
    serve_vod(&media, archive_id, version, &[&rendition, &file], query).await
}

/// Playlists anywhere; the thumbnail at the top of a version; segments in renditions.
/// Nothing once the archive is deleted; a private archive's with its token only.
async fn serve_vod(
    media: &Media,
    archive_id: Uuid,
    version: Uuid,
    parts: &[&str],
    query: MediaQuery,
) -> Result<Response, ApiError> {
    let file = parts.last().copied().unwrap_or_default();
    let in_rendition = parts.len() == 2;
    let extension = file.rsplit_once('.').map(|(_, ext)| ext);
    let (content_type, cache_control) = match extension {
        Some("m3u8") => (PLAYLIST, VOD_PLAYLIST_CACHE),
        Some("jpg") if !in_rendition => (JPEG, IMMUTABLE),
        Some("ts") if in_rendition => ("video/mp2t", IMMUTABLE),
        Some("m4s") if in_rendition => ("video/iso.segment", IMMUTABLE),
        Some("mp4") if in_rendition => ("video/mp4", IMMUTABLE),
        _ => return Err(ApiError::NotFound("media file")),
    };
    let key = object_key(&format!("vod/{archive_id}/{version}"), parts)?;
    let grant = media
        .access
        .archive(archive_id, query.token.as_deref())
        .await?;
    let bytes = fetch(&media.files, &key).await?;
    Ok(granted(&grant, content_type, cache_control, bytes))
}
