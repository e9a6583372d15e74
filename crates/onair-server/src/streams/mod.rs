//! Broadcasts: the creator's stream key, going live and ending (the media plane calls the
//! same store operations), editing title/category, and the public lists.

mod keys;

pub use keys::StreamKeys;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use onair_core::{Category, StreamStatus, StreamTitle};
use onair_store::{StoreError, StreamPatch, StreamView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::pagination::{self, PageBody, PageQuery};
use crate::state::AppState;
use crate::users::{UserSummaryDto, parse_clearable};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_stream_key))
        .routes(routes!(rotate_stream_key))
        .routes(routes!(start_stream))
        .routes(routes!(end_stream))
        .routes(routes!(list_streams))
        .routes(routes!(get_stream, update_stream))
        .routes(routes!(user_streams))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamDto {
    id: Uuid,
    title: String,
    category: Option<String>,
    /// `live`, `offline` (publisher dropped, may resume) or `ended`.
    #[schema(value_type = String, example = "live")]
    status: &'static str,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    /// Viewers watching now (updated every few seconds; 0 once ended).
    viewer_count: i64,
    peak_viewer_count: i64,
    /// Distinct viewers over the broadcast (HyperLogLog estimate).
    unique_viewer_count: i64,
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
            owner: stream.owner.into(),
        }
    }
}

/// Where and with what to publish. Treat the key like a password.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamKeyDto {
    stream_key: String,
    /// The OBS "Server" setting; the key goes in "Stream Key".
    rtmp_url: String,
    created_at: DateTime<Utc>,
}

fn stream_key_response(state: &AppState, record: &onair_store::StreamKeyRecord) -> Response {
    let body = StreamKeyDto {
        stream_key: state.stream_keys.reveal(record),
        rtmp_url: state.public_rtmp_url.to_string(),
        created_at: record.created_at.get(),
    };
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response()
}

/// The caller's stream key (created on first request). Only its owner can see it.
#[utoipa::path(get, path = "/me/stream-key", tag = "streams", security(("bearer" = [])),
    responses((status = 200, body = StreamKeyDto), (status = 401, body = ErrorBody)))]
async fn get_stream_key(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Response, ApiError> {
    if let Some(record) = state.store.stream_key(me).await? {
        return Ok(stream_key_response(&state, &record));
    }
    // Two first requests may race: whichever insert wins, both show the stored key.
    state
        .store
        .insert_stream_key(&state.stream_keys.generate(me))
        .await?;
    let record = state
        .store
        .stream_key(me)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(stream_key_response(&state, &record))
}

/// Replace the caller's stream key; the old one stops working at once.
#[utoipa::path(post, path = "/me/stream-key/rotate", tag = "streams", security(("bearer" = [])),
    responses((status = 200, body = StreamKeyDto), (status = 401, body = ErrorBody)))]
async fn rotate_stream_key(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Response, ApiError> {
    let record = state.stream_keys.generate(me);
    state.store.put_stream_key(&record).await?;
    Ok(stream_key_response(&state, &record))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartStreamRequest {
    title: String,
    category: Option<String>,
}

/// Go live: starts a new broadcast for the caller.
#[utoipa::path(post, path = "/streams/start", tag = "streams", security(("bearer" = [])), request_body = StartStreamRequest,
    responses((status = 201, body = StreamDto), (status = 401, body = ErrorBody),
        (status = 409, description = "`stream_already_live`", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn start_stream(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Json(request): Json<StartStreamRequest>,
) -> Result<(StatusCode, Json<StreamDto>), ApiError> {
    let title = StreamTitle::parse(&request.title)?;
    let category = request
        .category
        .as_deref()
        .map(Category::parse)
        .transpose()?;
    let stream = state
        .store
        .start_stream(
            Uuid::now_v7(),
            me,
            title.as_str(),
            category.as_ref().map(Category::as_str),
        )
        .await?;
    // Its fan-out was queued with it; run it now rather than at the next poll.
    state.notifications.wake_workers();
    Ok((StatusCode::CREATED, Json(stream.into())))
}

/// End the caller's live broadcast.
#[utoipa::path(post, path = "/streams/end", tag = "streams", security(("bearer" = [])),
    responses((status = 200, body = StreamDto), (status = 401, body = ErrorBody),
        (status = 409, description = "`stream_not_live`", body = ErrorBody)))]
async fn end_stream(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<StreamDto>, ApiError> {
    match state.store.end_stream(me).await {
        Ok(stream) => {
            state.notifications.wake_workers();
            Ok(Json(stream.into()))
        }
        Err(StoreError::NotFound) => Err(ApiError::StreamNotLive),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamListQuery {
    /// `live` (default), `offline` or `ended`.
    status: Option<String>,
    /// Page size, 1–100 (default 20).
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Broadcasts by state, most recently started first (live ones by default).
#[utoipa::path(get, path = "/streams", tag = "streams", params(StreamListQuery),
    responses((status = 200, body = PageBody<StreamDto>), (status = 400, body = ErrorBody)))]
async fn list_streams(
    State(state): State<AppState>,
    Query(query): Query<StreamListQuery>,
) -> Result<Json<PageBody<StreamDto>>, ApiError> {
    let status = match query.status.as_deref() {
        None => StreamStatus::Live,
        Some(s) => s
            .parse()
            .map_err(|e: onair_core::UnknownStatus| ApiError::InvalidQuery(e.to_string()))?,
    };
    let (limit, cursor) = pagination::parse(&state, query.limit, query.cursor.as_deref())?;
    let page = state.store.list_streams(status, limit, cursor).await?;
    Ok(Json(PageBody::from_page(&state, page, StreamDto::from)))
}

async fn load_stream(state: &AppState, id: Uuid) -> Result<StreamView, ApiError> {
    state
        .store
        .stream(id)
        .await?
        .ok_or(ApiError::NotFound("stream"))
}

/// One broadcast.
#[utoipa::path(get, path = "/streams/{id}", tag = "streams", params(("id" = Uuid, Path)),
    responses((status = 200, body = StreamDto), (status = 404, body = ErrorBody)))]
async fn get_stream(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<StreamDto>, ApiError> {
    Ok(Json(load_stream(&state, id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStreamRequest {
    title: Option<String>,
    /// `null` clears the category.
    #[serde(default, deserialize_with = "crate::users::nullable")]
    #[schema(value_type = Option<String>)]
    category: Option<Option<String>>,
}

/// Change a broadcast's title or category. Only its owner may.
#[utoipa::path(patch, path = "/streams/{id}", tag = "streams", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = UpdateStreamRequest,
    responses((status = 200, body = StreamDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_stream(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
    Json(request): Json<UpdateStreamRequest>,
) -> Result<Json<StreamDto>, ApiError> {
    let patch = StreamPatch {
        title: request
            .title
            .as_deref()
            .map(StreamTitle::parse)
            .transpose()?,
        category: parse_clearable(request.category, Category::parse)?,
    };
    if load_stream(&state, id).await?.owner.id != me {
        return Err(ApiError::Forbidden("only the stream's owner can change it"));
    }
    Ok(Json(state.store.update_stream(id, patch).await?.into()))
}

/// A user's broadcasts, most recent first.
#[utoipa::path(get, path = "/users/{id}/streams", tag = "streams", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<StreamDto>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn user_streams(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<StreamDto>>, ApiError> {
    let (limit, cursor) = query.parse(&state)?;
    let page = state.store.user_streams(id, limit, cursor).await?;
    if page.items.is_empty() {
        crate::users::ensure_exists(&state, id).await?;
    }
    Ok(Json(PageBody::from_page(&state, page, StreamDto::from)))
}
