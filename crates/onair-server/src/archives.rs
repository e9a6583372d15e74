//! Past broadcasts. A recorded broadcast's archive appears when it ends (the store writes
//! it with the end) and plays as streamed until its processing job switches it to the
//! final VOD. Owners set its visibility or delete it.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use onair_core::ValidationError;
use onair_store::{Archive, ArchiveStatus, ArchiveStore, ArchiveVisibility, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::dto::UserSummaryDto;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::identity::{AccessTokens, AuthUser, MaybeAuthUser};
use crate::media::MediaAccess;
use crate::pagination::{PageBody, PageQuery, UserLists};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Archives>: FromRef<S>,
    Arc<AccessTokens>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_archives))
        .routes(routes!(get_archive, update_archive, delete_archive))
        .routes(routes!(user_archives))
}

/// Past broadcasts.
pub struct Archives {
    archives: Arc<dyn ArchiveStore>,
    lists: UserLists,
    /// Opens a private archive's media to its owner.
    access: Arc<MediaAccess>,
}

impl Archives {
    pub(crate) fn new(
        archives: Arc<dyn ArchiveStore>,
        lists: UserLists,
        access: Arc<MediaAccess>,
    ) -> Self {
        Self {
            archives,
            lists,
            access,
        }
    }

    /// `archive` as `viewer` sees it.
    fn dto(&self, archive: Archive, viewer: Option<Uuid>) -> ArchiveDto {
        ArchiveDto::new(archive, viewer, &self.access)
    }

    /// Archive `id` as `viewer` may see it: a private one is its owner's alone, and
    /// anyone else is told it does not exist.
    async fn visible(&self, id: Uuid, viewer: Option<Uuid>) -> Result<Archive, ApiError> {
        self.archives
            .archive(id)
            .await?
            .filter(|a| a.visibility != ArchiveVisibility::Private || viewer == Some(a.owner.id))
            .ok_or(ApiError::NotFound("archive"))
    }

    /// Archive `id`, which `me` must own: 404 if `me` cannot see it, 403 if `me` can
    /// but does not own it.
    async fn owned(&self, me: Uuid, id: Uuid) -> Result<Archive, ApiError> {
        let archive = self.visible(id, Some(me)).await?;
        if archive.owner.id != me {
            return Err(ApiError::Forbidden(
                "only the archive's owner can change it",
            ));
        }
        Ok(archive)
    }

    async fn update(
        &self,
        me: Uuid,
        id: Uuid,
        request: UpdateArchiveRequest,
    ) -> Result<Archive, ApiError> {
        let visibility = ArchiveVisibility::parse(&request.visibility).ok_or_else(|| {
            ValidationError::new("visibility", "must be public, unlisted or private")
        })?;
        let archive = self.owned(me, id).await?;
        let updated = self
            .archives
            .set_archive_visibility(id, me, visibility)
            .await;
        self.access.forget(&archive).await;
        match updated {
            Err(StoreError::NotFound) => Err(ApiError::NotFound("archive")),
            other => Ok(other?),
        }
    }

    async fn delete(&self, me: Uuid, id: Uuid) -> Result<(), ApiError> {
        let archive = self.owned(me, id).await?;
        let deleted = self.archives.delete_archive(id, me).await;
        self.access.forget(&archive).await;
        match deleted {
            Err(StoreError::NotFound) => Err(ApiError::NotFound("archive")),
            other => Ok(other?),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArchiveDto {
    id: Uuid,
    stream_id: Uuid,
    /// The broadcast's title and category when it ended.
    title: String,
    category: Option<String>,
    /// `processing` (playable as streamed), `ready` (the final VOD) or `failed`
    /// (processing gave up; still playable as streamed).
    #[schema(schema_with = crate::openapi::archive_status, example = "ready")]
    status: &'static str,
    /// Of the processing, 0–1.
    progress: f64,
    /// `public` (listed), `unlisted` (by link) or `private` (the owner only).
    #[schema(schema_with = crate::openapi::archive_visibility, example = "public")]
    visibility: &'static str,
    /// HLS master playlist: the recording as streamed
    /// (`/live/{stream_id}/recording.m3u8`) until ready, then the VOD
    /// (`/vod/{id}/{version}/master.m3u8`). A private archive's media URLs carry a
    /// `?token=` that opens them for about 12 hours; its media answers 404 without one.
    playlist_url: Option<String>,
    thumbnail_url: Option<String>,
    /// Exact length once ready; null before.
    duration_secs: Option<f64>,
    /// `duration_secs` in milliseconds (0 before ready).
    duration_ms: i64,
    /// Why processing failed; shown to the owner only.
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
    /// When the broadcast ended.
    created_at: DateTime<Utc>,
    creator: UserSummaryDto,
}

impl ArchiveDto {
    /// `archive` as `viewer` sees it, its media opened by `access`.
    fn new(archive: Archive, viewer: Option<Uuid>, access: &MediaAccess) -> Self {
        let url = |path: &Option<String>| {
            let path = path.as_ref()?;
            Some(access.url(&archive, &format!("/{path}")))
        };
        let playlist_url = url(&archive.playlist_path);
        let thumbnail_url = url(&archive.thumbnail_path);
        let ready = archive.status == ArchiveStatus::Ready;
        let owner = viewer == Some(archive.owner.id);
        Self {
            id: archive.id,
            stream_id: archive.stream_id,
            title: archive.title,
            category: archive.category,
            status: archive.status.as_str(),
            progress: archive.progress,
            visibility: archive.visibility.as_str(),
            playlist_url,
            thumbnail_url,
            duration_secs: ready.then(|| archive.duration_ms as f64 / 1000.0),
            duration_ms: archive.duration_ms,
            failure_reason: archive.failure_reason.filter(|_| owner),
            created_at: archive.created_at.get(),
            creator: archive.owner.into(),
        }
    }
}

/// Public archives of every creator, processing or ready, newest first.
#[utoipa::path(get, path = "/archives", tag = "archives", params(PageQuery),
    responses((status = 200, body = PageBody<ArchiveDto>), (status = 400, body = ErrorBody)))]
async fn list_archives(
    State(service): State<Arc<Archives>>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<ArchiveDto>>, ApiError> {
    let archives = &service.archives;
    let fetch = async |limit, cursor| archives.list_archives(limit, cursor).await;
    let cursors = service.lists.cursors();
    cursors.page(&query, fetch, |a| service.dto(a, None)).await
}

/// One archive, in any state. A private archive is found by its owner only.
#[utoipa::path(get, path = "/archives/{id}", tag = "archives", security((), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ArchiveDto), (status = 401, description = "`invalid_token`, `token_expired`: a token was sent and is not valid", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_archive(
    State(service): State<Arc<Archives>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<ArchiveDto>, ApiError> {
    let archive = service.visible(id, viewer).await?;
    Ok(Json(service.dto(archive, viewer)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateArchiveRequest {
    #[schema(schema_with = crate::openapi::archive_visibility)]
    visibility: String,
}

/// Change an archive's visibility. Only its owner may.
#[utoipa::path(patch, path = "/archives/{id}", tag = "archives", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateArchiveRequest,
    responses((status = 200, body = ArchiveDto), (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: not the owner", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_archive(
    State(service): State<Arc<Archives>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
    Json(request): Json<UpdateArchiveRequest>,
) -> Result<Json<ArchiveDto>, ApiError> {
    let archive = service.update(me, id, request).await?;
    Ok(Json(service.dto(archive, Some(me))))
}

/// Delete an archive at once; its video is removed from storage shortly after. Only its
/// owner may.
#[utoipa::path(delete, path = "/archives/{id}", tag = "archives", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: not the owner", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_archive(
    State(service): State<Arc<Archives>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    service.delete(me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A creator's archives, newest first: public ones (processing or ready) for everyone,
/// every one for the creator.
#[utoipa::path(get, path = "/users/{id}/archives", tag = "archives", security((), ("bearer" = [])),
    params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<ArchiveDto>), (status = 400, body = ErrorBody),
        (status = 401, description = "`invalid_token`, `token_expired`: a token was sent and is not valid", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn user_archives(
    State(service): State<Arc<Archives>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<ArchiveDto>>, ApiError> {
    let archives = &service.archives;
    let fetch = async |limit, cursor| archives.user_archives(id, viewer, limit, cursor).await;
    service
        .lists
        .page(id, &query, fetch, |a| service.dto(a, viewer))
        .await
}
