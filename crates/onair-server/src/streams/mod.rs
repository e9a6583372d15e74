//! Broadcasts: the creator's stream key, going live and ending (the media plane calls the
//! same store operations), editing title/category, and the public lists.

mod keys;

pub use keys::StreamKeys;

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use onair_core::{Category, StreamSort, StreamStatus, StreamTitle};
use onair_media::Publishers;
use onair_store::{
    StoreError, StreamKeyRecord, StreamKeyStore, StreamPatch, StreamStore, StreamView,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::caches::Caches;
use crate::dto::{UserSummaryDto, parse_clearable};
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::identity::{AccessTokens, AuthUser};
use crate::pagination::{PageBody, PageQuery, UserLists};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Streams>: FromRef<S>,
    Arc<AccessTokens>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(get_stream_key))
        .routes(routes!(rotate_stream_key))
        .routes(routes!(start_stream))
        .routes(routes!(end_stream))
        .routes(routes!(list_streams))
        .routes(routes!(get_stream, update_stream))
        .routes(routes!(user_streams))
}

/// Stream keys, going live and ending by hand, and editing broadcasts.
pub struct Streams {
    streams: Arc<dyn StreamStore>,
    key_store: Arc<dyn StreamKeyStore>,
    keys: StreamKeys,
    /// Ingest URLs shown next to the key.
    ingest_urls: IngestUrls,
    /// Wakes this node's job runners: going live and ending queue notifications.
    jobs: Arc<Notify>,
    lists: UserLists,
    /// This node's running publishes, stopped when their key or broadcast ends.
    publishers: Publishers,
    /// The live list and profiles show broadcasts.
    caches: Arc<Caches>,
}

impl Streams {
    pub fn new(
        streams: Arc<dyn StreamStore>,
        key_store: Arc<dyn StreamKeyStore>,
        keys: StreamKeys,
        ingest_urls: IngestUrls,
        jobs: Arc<Notify>,
        lists: UserLists,
        (publishers, caches): (Publishers, Arc<Caches>),
    ) -> Self {
        Self {
            streams,
            key_store,
            keys,
            ingest_urls,
            jobs,
            lists,
            publishers,
            caches,
        }
    }

    /// The user's key, created on first request.
    async fn key(&self, me: Uuid) -> Result<StreamKeyRecord, ApiError> {
        if let Some(record) = self.key_store.stream_key(me).await? {
            return Ok(record);
        }
        // Two first requests may race: whichever insert wins, both show the stored key.
        self.key_store
            .insert_stream_key(&self.keys.generate(me))
            .await?;
        self.key_store
            .stream_key(me)
            .await?
            .ok_or(ApiError::NotFound("user"))
    }

    /// A new key; the broadcast fed with the old one ends and its publisher is cut off.
    async fn rotate_key(&self, me: Uuid) -> Result<StreamKeyRecord, ApiError> {
        let record = self.keys.generate(me);
        self.key_store.put_stream_key(&record).await?;
        match self.end(me).await {
            Ok(_) | Err(ApiError::StreamNotLive) => Ok(record),
            Err(e) => Err(e),
        }
    }

    fn key_response(&self, record: &StreamKeyRecord) -> Response {
        let stream_key = self.keys.reveal(record);
        let body = StreamKeyDto {
            srt_url: self.ingest_urls.srt.as_ref().map(|url| {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}streamid=publish:{stream_key}")
            }),
            stream_key,
            rtmp_url: self.ingest_urls.rtmp.clone(),
            created_at: record.created_at.get(),
        };
        (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(body),
        )
            .into_response()
    }

    async fn start(&self, me: Uuid, request: StartStreamRequest) -> Result<StreamView, ApiError> {
        let title = StreamTitle::parse(&request.title)?;
        let category = request
            .category
            .as_deref()
            .map(Category::parse)
            .transpose()?;
        let stream = self
            .streams
            .start_stream(
                Uuid::now_v7(),
                me,
                title.as_str(),
                category.as_ref().map(Category::as_str),
            )
            .await?;
        // Its fan-out was queued with it; run it now rather than at the next poll.
        self.jobs.notify_one();
        self.caches.channel_changed(me).await;
        Ok(stream)
    }

    /// Ends the broadcast and disconnects its publisher: at once on this node, within the
    /// ingest's re-check on another.
    async fn end(&self, me: Uuid) -> Result<StreamView, ApiError> {
        match self.streams.end_stream(me).await {
            Ok(stream) => {
                self.ended(me).await;
                Ok(stream)
            }
            Err(StoreError::NotFound) => Err(ApiError::StreamNotLive),
            Err(e) => Err(e.into()),
        }
    }

    /// What `owner`'s broadcast having ended (by them or an admin) does on this node: its
    /// publisher here is cut at once (on another node, at its ingest's re-check), the
    /// jobs the end queued run now, the caches that show it are refreshed.
    pub(crate) async fn ended(&self, owner: Uuid) {
        self.publishers.stop(owner);
        self.jobs.notify_one();
        self.caches.channel_changed(owner).await;
    }

    async fn stream(&self, id: Uuid) -> Result<StreamView, ApiError> {
        self.streams
            .stream(id)
            .await?
            .ok_or(ApiError::NotFound("stream"))
    }

    /// Only the broadcast's owner may change it.
    async fn update(
        &self,
        me: Uuid,
        id: Uuid,
        request: UpdateStreamRequest,
    ) -> Result<StreamView, ApiError> {
        let patch = StreamPatch {
            title: request
                .title
                .as_deref()
                .map(StreamTitle::parse)
                .transpose()?,
            category: parse_clearable(request.category, Category::parse)?,
        };
        if self.stream(id).await?.owner.id != me {
            return Err(ApiError::Forbidden("only the stream's owner can change it"));
        }
        let stream = self.streams.update_stream(id, patch).await?;
        self.caches.channel_changed(me).await;
        Ok(stream)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamDto {
    id: Uuid,
    title: String,
    category: Option<String>,
    /// `live`, `offline` (publisher dropped, may resume) or `ended`.
    #[schema(schema_with = crate::openapi::stream_status, example = "live")]
    status: &'static str,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    /// Viewers watching now (updated every few seconds; 0 once ended).
    viewer_count: i64,
    peak_viewer_count: i64,
    /// Distinct viewers over the broadcast (HyperLogLog estimate).
    unique_viewer_count: i64,
    /// A still of the broadcast, replaced every ~10 s (`/live/{id}/preview.jpg`); null
    /// unless it is live with video coming in.
    preview_url: Option<String>,
    /// Whether the broadcast is recorded: its archive appears when it ends.
    recording: bool,
    /// Why it is not recorded although its creator records broadcasts:
    /// `storage_quota_exceeded`.
    recording_refused: Option<String>,
    owner: UserSummaryDto,
}

impl From<StreamView> for StreamDto {
    fn from(stream: StreamView) -> Self {
        Self {
            id: stream.id,
            title: stream.title,
            category: stream.category,
            status: stream.status.as_str(),
            started_at: stream.started_at.get(),
            ended_at: stream.ended_at.map(|t| t.get()),
            viewer_count: if stream.status == StreamStatus::Ended {
                0
            } else {
                stream.viewer_count
            },
            peak_viewer_count: stream.peak_viewer_count,
            unique_viewer_count: stream.unique_viewer_count,
            preview_url: (stream.status == StreamStatus::Live && stream.publishing).then(|| {
                format!(
                    "/{}/{}",
                    onair_media::live_key(stream.id),
                    onair_media::PREVIEW_IMAGE
                )
            }),
            recording: stream.recording,
            recording_refused: stream.recording_refused,
            owner: stream.owner.into(),
        }
    }
}

/// Where encoders publish, as creators are shown it.
#[derive(Debug, Clone)]
pub struct IngestUrls {
    pub rtmp: String,
    /// None when SRT ingest is off.
    pub srt: Option<String>,
}

/// Where and with what to publish. Treat the key like a password.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamKeyDto {
    stream_key: String,
    /// The OBS "Server" setting; the key goes in "Stream Key".
    rtmp_url: String,
    /// For SRT (OBS 28+): the whole OBS "Server" setting, key included in the
    /// `streamid`; "Stream Key" stays empty. Null when SRT ingest is off.
    srt_url: Option<String>,
    created_at: DateTime<Utc>,
}

/// The caller's stream key (created on first request). Only its owner can see it.
#[utoipa::path(get, path = "/me/stream-key", tag = "streams", security(("bearer" = [])),
    responses((status = 200, body = StreamKeyDto), (status = 401, body = ErrorBody), (status = 404, description = "`not_found`: the token's account no longer exists", body = ErrorBody)))]
async fn get_stream_key(
    State(streams): State<Arc<Streams>>,
    AuthUser(me): AuthUser,
) -> Result<Response, ApiError> {
    Ok(streams.key_response(&streams.key(me).await?))
}

/// Replace the caller's stream key; the old one stops working at once: a broadcast fed with
/// it ends and its encoder is disconnected.
#[utoipa::path(post, path = "/me/stream-key/rotate", tag = "streams", security(("bearer" = [])),
    responses((status = 200, body = StreamKeyDto), (status = 401, body = ErrorBody), (status = 404, description = "`not_found`: the token's account no longer exists", body = ErrorBody)))]
async fn rotate_stream_key(
    State(streams): State<Arc<Streams>>,
    AuthUser(me): AuthUser,
) -> Result<Response, ApiError> {
    Ok(streams.key_response(&streams.rotate_key(me).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartStreamRequest {
    title: String,
    category: Option<String>,
}

/// Go live: starts a new broadcast for the caller.
#[utoipa::path(post, path = "/streams/start", tag = "streams", security(("bearer" = [])), request_body = StartStreamRequest,
    responses((status = 201, body = StreamDto), (status = 401, body = ErrorBody), (status = 403, description = "`account_suspended`", body = ErrorBody),
        (status = 404, description = "`not_found`: the token's account no longer exists", body = ErrorBody),
        (status = 409, description = "`stream_already_live`", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn start_stream(
    State(streams): State<Arc<Streams>>,
    AuthUser(me): AuthUser,
    Json(request): Json<StartStreamRequest>,
) -> Result<(StatusCode, Json<StreamDto>), ApiError> {
    let stream = streams.start(me, request).await?;
    Ok((StatusCode::CREATED, Json(stream.into())))
}

/// End the caller's live broadcast; its encoder, if any, is disconnected.
#[utoipa::path(post, path = "/streams/end", tag = "streams", security(("bearer" = [])),
    responses((status = 200, body = StreamDto), (status = 401, body = ErrorBody),
        (status = 409, description = "`stream_not_live`", body = ErrorBody)))]
async fn end_stream(
    State(streams): State<Arc<Streams>>,
    AuthUser(me): AuthUser,
) -> Result<Json<StreamDto>, ApiError> {
    Ok(Json(streams.end(me).await?.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamListQuery {
    /// `live` (default), `offline` or `ended`.
    #[param(schema_with = crate::openapi::stream_status)]
    status: Option<String>,
    /// `started` (default): most recently started first; `viewers`: most watched first,
    /// by the last flushed viewer count. A cursor pages only the order that made it.
    #[param(schema_with = crate::openapi::stream_sort)]
    sort: Option<StreamSort>,
    /// Page size, 1–100 (default 20).
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Broadcasts by state (live ones by default), most recently started or most watched first.
/// The live list's first pages are cached (`cache.live_list_ttl_secs`).
#[utoipa::path(get, path = "/streams", tag = "streams", params(StreamListQuery),
    responses((status = 200, body = PageBody<StreamDto>), (status = 400, body = ErrorBody)))]
async fn list_streams(
    State(streams): State<Arc<Streams>>,
    Query(query): Query<StreamListQuery>,
) -> Result<Response, ApiError> {
    let status = match query.status.as_deref() {
        None => StreamStatus::Live,
        Some(s) => s
            .parse()
            .map_err(|e: onair_core::UnknownStatus| ApiError::InvalidQuery(e.to_string()))?,
    };
    let store = &streams.streams;
    let cursors = streams.lists.cursors();
    let sort = query.sort.unwrap_or_default();
    let (limit, cursor) = cursors.parse(query.limit, query.cursor.as_deref())?;
    let render = async || {
        let page = store.list_streams(status, sort, limit, cursor).await?;
        let body = PageBody::from_page(cursors, page, StreamDto::from);
        Ok::<_, StoreError>(serde_json::to_string(&body).expect("a page serializes"))
    };
    let body = if status == StreamStatus::Live && cursor.is_none() {
        let key = format!("{}:{}", sort.as_str(), limit.get());
        streams.caches.live_page(&key, render).await?
    } else {
        render().await?
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// One broadcast.
#[utoipa::path(get, path = "/streams/{id}", tag = "streams", params(("id" = Uuid, Path)),
    responses((status = 200, body = StreamDto), (status = 404, body = ErrorBody)))]
async fn get_stream(
    State(streams): State<Arc<Streams>>,
    Path(id): Path<Uuid>,
) -> Result<Json<StreamDto>, ApiError> {
    Ok(Json(streams.stream(id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStreamRequest {
    title: Option<String>,
    /// `null` clears the category.
    #[serde(default, deserialize_with = "crate::dto::nullable")]
    #[schema(value_type = Option<String>)]
    category: Option<Option<String>>,
}

/// Change a broadcast's title or category. Only its owner may.
#[utoipa::path(patch, path = "/streams/{id}", tag = "streams", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = UpdateStreamRequest,
    responses((status = 200, body = StreamDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_stream(
    State(streams): State<Arc<Streams>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
    Json(request): Json<UpdateStreamRequest>,
) -> Result<Json<StreamDto>, ApiError> {
    Ok(Json(streams.update(me, id, request).await?.into()))
}

/// A user's broadcasts, most recent first.
#[utoipa::path(get, path = "/users/{id}/streams", tag = "streams", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<StreamDto>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn user_streams(
    State(streams): State<Arc<Streams>>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<StreamDto>>, ApiError> {
    let store = &streams.streams;
    let fetch = async |limit, cursor| store.user_streams(id, limit, cursor).await;
    streams.lists.page(id, &query, fetch, StreamDto::from).await
}
