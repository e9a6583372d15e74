//! Clips: any signed-in viewer cuts up to a minute of a broadcast — a range of its
//! archive, or the last seconds of it while live (Twitch's clip button). The request
//! answers 202 at once; the `clip_cut` job (`processing`) makes its HLS playlist.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use onair_core::{StreamStatus, StreamTitle, ValidationError};
use onair_infra::MediaStore;
use onair_store::{
    ArchiveStatus, ArchiveStore, ArchiveVisibility, Clip, ClipStore, NewClip, StoreError,
    StreamStore,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::dto::UserSummaryDto;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::identity::{AccessTokens, AuthUser};
use crate::media::{
    IMMUTABLE, JPEG, PLAYLIST, SEGMENT, VOD_PLAYLIST_CACHE, fetch, object_key, respond,
};
use crate::pagination::{PageBody, PageQuery, UserLists};

/// The longest clip, in seconds.
const MAX_CLIP_SECS: f64 = 60.0;
/// The shortest.
const MIN_CLIP_SECS: f64 = 1.0;
/// Rounding in a recording's listed length that a range may overrun.
const SLACK_SECS: f64 = 0.05;

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Clips>: FromRef<S>,
    Arc<AccessTokens>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(create_clip))
        .routes(routes!(get_clip, delete_clip))
        .routes(routes!(channel_clips))
}

/// A clip's playlist, segments and thumbnail (`/media/clips/…`), outside the API prefix.
pub fn files_router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Clips>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(clip_file))
}

/// The storage clips read: their own, and the broadcasts and archives they come from.
pub struct ClipSources {
    pub clips: Arc<dyn ClipStore>,
    pub archives: Arc<dyn ArchiveStore>,
    pub streams: Arc<dyn StreamStore>,
}

/// Asking for clips, listing, serving and deleting them.
pub struct Clips {
    stores: ClipSources,
    files: MediaStore,
    lists: UserLists,
    /// Wakes this node's job runners when a cut is queued.
    jobs: Arc<Notify>,
}

impl Clips {
    pub fn new(
        stores: ClipSources,
        files: MediaStore,
        lists: UserLists,
        jobs: Arc<Notify>,
    ) -> Self {
        Self {
            stores,
            files,
            lists,
            jobs,
        }
    }

    async fn create(&self, me: Uuid, request: CreateClipRequest) -> Result<Clip, ApiError> {
        let length = request.duration_secs;
        if !(MIN_CLIP_SECS..=MAX_CLIP_SECS).contains(&length) {
            return Err(ValidationError::new("duration_secs", "must be 1 to 60 seconds").into());
        }
        let (source, start, length) = match (request.archive_id, request.stream_id) {
            (Some(archive), None) => {
                self.archive_range(me, archive, request.start_secs, length)
                    .await?
            }
            (None, Some(stream)) => self.live_range(stream, request.start_secs, length).await?,
            _ => {
                let reason = "give archive_id (with start_secs) or stream_id, not both";
                return Err(ValidationError::new("archive_id", reason).into());
            }
        };
        let title = match &request.title {
            Some(title) => StreamTitle::parse(title)?.into_inner(),
            None => source.title,
        };
        let clip = NewClip {
            id: Uuid::now_v7(),
            clipper_id: me,
            stream_id: source.stream_id,
            archive_id: source.archive_id,
            title,
            start_secs: start,
            duration_secs: length,
        };
        let clip = self.stores.clips.insert_clip(clip).await?;
        self.jobs.notify_one();
        Ok(clip)
    }

    /// A range of an archive `me` can see, inside what it recorded.
    async fn archive_range(
        &self,
        me: Uuid,
        id: Uuid,
        start: Option<f64>,
        length: f64,
    ) -> Result<(Source, f64, f64), ApiError> {
        let archive = self
            .stores
            .archives
            .archive(id)
            .await?
            .filter(|a| a.visibility != ArchiveVisibility::Private || a.owner.id == me)
            .ok_or(ApiError::NotFound("archive"))?;
        let start = start
            .ok_or_else(|| ValidationError::new("start_secs", "is required with archive_id"))?;
        let recorded = match archive.status {
            ArchiveStatus::Ready => archive.duration_ms as f64 / 1000.0,
            _ => self.recorded_secs(archive.stream_id).await?,
        };
        if !(start.is_finite() && start >= 0.0 && start + length <= recorded + SLACK_SECS) {
            let reason = format!("the range must be inside the recording (0 to {recorded:.1} s)");
            return Err(ValidationError::new("start_secs", reason).into());
        }
        let source = Source {
            stream_id: archive.stream_id,
            archive_id: Some(archive.id),
            title: archive.title,
        };
        Ok((source, start, length))
    }

    /// The last `length` seconds of a live, recorded broadcast.
    async fn live_range(
        &self,
        id: Uuid,
        start: Option<f64>,
        length: f64,
    ) -> Result<(Source, f64, f64), ApiError> {
        if start.is_some() {
            let reason = "a live clip is the last duration_secs: give start_secs with archive_id";
            return Err(ValidationError::new("start_secs", reason).into());
        }
        let stream = self
            .stores
            .streams
            .stream(id)
            .await?
            .ok_or(ApiError::NotFound("stream"))?;
        if stream.status == StreamStatus::Ended {
            let reason = "the broadcast has ended: clip its archive";
            return Err(ValidationError::new("stream_id", reason).into());
        }
        if !stream.recording {
            return Err(ValidationError::new("stream_id", "this broadcast is not recorded").into());
        }
        let recorded = self.recorded_secs(id).await?;
        if recorded < MIN_CLIP_SECS {
            return Err(ValidationError::new("stream_id", "nothing recorded yet").into());
        }
        let length = length.min(recorded);
        let source = Source {
            stream_id: id,
            archive_id: None,
            title: stream.title,
        };
        Ok((source, recorded - length, length))
    }

    /// How much of broadcast `stream_id` its recording as streamed holds.
    async fn recorded_secs(&self, stream_id: Uuid) -> Result<f64, ApiError> {
        let key = onair_media::recording_key(stream_id, "source");
        match fetch(&self.files, &key).await {
            Ok(playlist) => Ok(onair_media::playlist_duration(&String::from_utf8_lossy(
                &playlist,
            ))),
            Err(ApiError::NotFound(_)) => Ok(0.0),
            Err(e) => Err(e),
        }
    }
}

/// What a clip is cut from.
struct Source {
    stream_id: Uuid,
    archive_id: Option<Uuid>,
    title: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClipRequest {
    /// Clip this archive, from `start_secs`.
    archive_id: Option<Uuid>,
    /// Or clip the last `duration_secs` of this live broadcast.
    stream_id: Option<Uuid>,
    /// Seconds from the archive's start.
    start_secs: Option<f64>,
    /// 1–60.
    duration_secs: f64,
    /// Defaults to the broadcast's title.
    title: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClipDto {
    id: Uuid,
    title: String,
    /// `processing`, `ready` or `failed`.
    #[schema(schema_with = crate::openapi::archive_status, example = "ready")]
    status: &'static str,
    stream_id: Uuid,
    archive_id: Option<Uuid>,
    /// Where it starts in the recording.
    start_secs: f64,
    /// Asked for while processing, exact once ready.
    duration_secs: f64,
    /// Its HLS (VOD) media playlist, once ready.
    playlist_url: Option<String>,
    thumbnail_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
    clipper_id: Uuid,
    /// The channel it was clipped on.
    channel: UserSummaryDto,
    created_at: DateTime<Utc>,
}

impl From<Clip> for ClipDto {
    fn from(clip: Clip) -> Self {
        let url = |path: Option<String>| path.map(|p| format!("/media/{p}"));
        Self {
            id: clip.id,
            title: clip.title,
            status: clip.status.as_str(),
            stream_id: clip.stream_id,
            archive_id: clip.archive_id,
            start_secs: clip.start_secs,
            duration_secs: clip.duration_secs,
            playlist_url: url(clip.playlist_path),
            thumbnail_url: url(clip.thumbnail_path),
            failure_reason: clip.failure_reason,
            clipper_id: clip.clipper_id,
            channel: clip.channel.into(),
            created_at: clip.created_at.get(),
        }
    }
}

/// Clip a range of an archive, or the last seconds of a live broadcast. The clip is cut
/// in the background: poll it until `status` is `ready`.
#[utoipa::path(post, path = "/clips", tag = "clips", security(("bearer" = [])),
    request_body = CreateClipRequest,
    responses((status = 202, body = ClipDto), (status = 401, body = ErrorBody),
        (status = 404, description = "`not_found`: no such archive or broadcast (or a private archive)", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a range outside the recording, longer than 60 s, or a broadcast not recorded", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn create_clip(
    State(clips): State<Arc<Clips>>,
    AuthUser(me): AuthUser,
    Json(request): Json<CreateClipRequest>,
) -> Result<(StatusCode, Json<ClipDto>), ApiError> {
    let clip = clips.create(me, request).await?;
    Ok((StatusCode::ACCEPTED, Json(clip.into())))
}

/// One clip, in any state.
#[utoipa::path(get, path = "/clips/{id}", tag = "clips", params(("id" = Uuid, Path)),
    responses((status = 200, body = ClipDto), (status = 404, body = ErrorBody)))]
async fn get_clip(
    State(clips): State<Arc<Clips>>,
    Path(id): Path<Uuid>,
) -> Result<Json<ClipDto>, ApiError> {
    let clip = clips
        .stores
        .clips
        .clip(id)
        .await?
        .ok_or(ApiError::NotFound("clip"))?;
    Ok(Json(clip.into()))
}

/// Delete a clip: its clipper, the channel's owner or one of its moderators may.
#[utoipa::path(delete, path = "/clips/{id}", tag = "clips", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: not the clipper, the channel's owner or a moderator", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_clip(
    State(clips): State<Arc<Clips>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    match clips.stores.clips.delete_clip(id, me).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::Forbidden(
            "only the clipper, the channel's owner or a moderator can delete a clip",
        )),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("clip")),
        Err(e) => Err(e.into()),
    }
}

/// A channel's clips, newest first.
#[utoipa::path(get, path = "/users/{id}/clips", tag = "clips", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<ClipDto>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn channel_clips(
    State(clips): State<Arc<Clips>>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<ClipDto>>, ApiError> {
    let store = &clips.stores.clips;
    let fetch = async |limit, cursor| store.channel_clips(id, limit, cursor).await;
    clips.lists.page(id, &query, fetch, ClipDto::from).await
}

/// A clip's HLS playlist (`index.m3u8`), one of its segments (`.ts`) or its thumbnail
/// (`thumbnail.jpg`). A clip's files never change; its playlist is cached like a VOD's.
#[utoipa::path(get, path = "/media/clips/{id}/{file}", tag = "media",
    params(("id" = Uuid, Path), ("file" = String, Path, description = "`index.m3u8`, a segment (`seg_00000.ts`…) or `thumbnail.jpg`")),
    responses((status = 200, description = "HLS playlist, MPEG-TS segment or JPEG image", content(
            (String = "application/vnd.apple.mpegurl"), (Vec<u8> = "video/mp2t"), (Vec<u8> = "image/jpeg"))),
        (status = 404, body = ErrorBody), (status = 503, description = "`service_unavailable`: the media store", body = ErrorBody)))]
async fn clip_file(
    State(clips): State<Arc<Clips>>,
    Path((id, file)): Path<(Uuid, String)>,
) -> Result<Response, ApiError> {
    let (content_type, cache_control) = match file.as_str() {
        "index.m3u8" => (PLAYLIST, VOD_PLAYLIST_CACHE),
        "thumbnail.jpg" => (JPEG, IMMUTABLE),
        segment if segment.ends_with(".ts") => (SEGMENT, IMMUTABLE),
        _ => return Err(ApiError::NotFound("media file")),
    };
    let key = object_key(&format!("clips/{id}"), &[&file])?;
    let bytes = fetch(&clips.files, &key).await?;
    Ok(respond(content_type, cache_control, bytes))
}
