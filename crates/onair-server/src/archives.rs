//! Past broadcasts. Rows are written by the archive pipeline; this is the read API.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use chrono::{DateTime, Utc};
use onair_store::{Archive, ArchiveStore};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::dto::UserSummaryDto;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::pagination::{PageBody, PageQuery, UserLists};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Archives>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_archives))
        .routes(routes!(get_archive))
        .routes(routes!(user_archives))
}

/// Past broadcasts.
pub struct Archives {
    archives: Arc<dyn ArchiveStore>,
    lists: UserLists,
}

impl Archives {
    pub fn new(archives: Arc<dyn ArchiveStore>, lists: UserLists) -> Self {
        Self { archives, lists }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArchiveDto {
    id: Uuid,
    stream_id: Uuid,
    title: String,
    /// `processing`, `ready` or `failed`.
    #[schema(schema_with = crate::openapi::archive_status, example = "ready")]
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
    State(service): State<Arc<Archives>>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<ArchiveDto>>, ApiError> {
    let archives = &service.archives;
    let fetch = async |limit, cursor| archives.list_archives(limit, cursor).await;
    let cursors = service.lists.cursors();
    cursors.page(&query, fetch, ArchiveDto::from).await
}

/// One archive, in any state.
#[utoipa::path(get, path = "/archives/{id}", tag = "archives", params(("id" = Uuid, Path)),
    responses((status = 200, body = ArchiveDto), (status = 404, body = ErrorBody)))]
async fn get_archive(
    State(service): State<Arc<Archives>>,
    Path(id): Path<Uuid>,
) -> Result<Json<ArchiveDto>, ApiError> {
    let archive = service
        .archives
        .archive(id)
        .await?
        .ok_or(ApiError::NotFound("archive"))?;
    Ok(Json(archive.into()))
}

/// A creator's ready archives, newest first.
#[utoipa::path(get, path = "/users/{id}/archives", tag = "archives", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<ArchiveDto>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn user_archives(
    State(service): State<Arc<Archives>>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<ArchiveDto>>, ApiError> {
    let archives = &service.archives;
    let fetch = async |limit, cursor| archives.user_archives(id, limit, cursor).await;
    service
        .lists
        .page(id, &query, fetch, ArchiveDto::from)
        .await
}
