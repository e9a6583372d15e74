//! Past broadcasts. Rows are written by the archive pipeline; this is the read API.

use axum::extract::State;
use chrono::{DateTime, Utc};
use onair_store::Archive;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::pagination::{PageBody, PageQuery};
use crate::state::AppState;
use crate::users::UserSummaryDto;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_archives))
        .routes(routes!(get_archive))
        .routes(routes!(user_archives))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArchiveDto {
    id: Uuid,
    stream_id: Uuid,
    title: String,
    /// `processing`, `ready` or `failed`.
    #[schema(value_type = String, example = "ready")]
    status: &'static str,
    duration_ms: i64,
    /// Playlist path under the media root, once ready.
    playlist_path: Option<String>,
    created_at: DateTime<Utc>,
    owner: UserSummaryDto,
}

impl From<Archive> for ArchiveDto {
    fn from(archive: Archive) -> Self {
        Self {
            id: archive.id,
            stream_id: archive.stream_id,
            title: archive.title,
            status: archive.status.as_str(),
            duration_ms: archive.duration_ms,
            playlist_path: archive.playlist_path,
            created_at: archive.created_at.get(),
            owner: archive.owner.into(),
        }
    }
}

/// Ready archives of every creator, newest first.
#[utoipa::path(get, path = "/archives", tag = "archives", params(PageQuery),
    responses((status = 200, body = PageBody<ArchiveDto>), (status = 400, body = ErrorBody)))]
async fn list_archives(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<ArchiveDto>>, ApiError> {
    let (limit, cursor) = query.parse(&state)?;
    let page = state.store.list_archives(limit, cursor).await?;
    Ok(Json(PageBody::from_page(&state, page, ArchiveDto::from)))
}

/// One archive, in any state.
#[utoipa::path(get, path = "/archives/{id}", tag = "archives", params(("id" = Uuid, Path)),
    responses((status = 200, body = ArchiveDto), (status = 404, body = ErrorBody)))]
async fn get_archive(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<ArchiveDto>, ApiError> {
    let archive = state
        .store
        .archive(id)
        .await?
        .ok_or(ApiError::NotFound("archive"))?;
    Ok(Json(archive.into()))
}

/// A creator's ready archives, newest first.
#[utoipa::path(get, path = "/users/{id}/archives", tag = "archives", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<ArchiveDto>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn user_archives(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<ArchiveDto>>, ApiError> {
    let (limit, cursor) = query.parse(&state)?;
    let page = state.store.user_archives(id, limit, cursor).await?;
    if page.items.is_empty() {
        crate::users::ensure_exists(&state, id).await?;
    }
    Ok(Json(PageBody::from_page(&state, page, ArchiveDto::from)))
}
