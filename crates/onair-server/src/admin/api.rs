//! `/api/admin/…`: for an admin's access token only (`forbidden` otherwise), on API
//! nodes. Each action is in the audit log (`GET /api/admin/audit`).

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use onair_store::jobs::DeadJob;
use onair_store::{AuditEntry, Suspension};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::Admin;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::identity::{AccessTokens, AuthUser};
use crate::pagination::{Cursors, PageBody, PageQuery};
use crate::streams::StreamDto;

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Admin>: FromRef<S>,
    Arc<Cursors>: FromRef<S>,
    Arc<AccessTokens>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(suspend_user))
        .routes(routes!(unsuspend_user))
        .routes(routes!(end_broadcast))
        .routes(routes!(dead_jobs))
        .routes(routes!(revive_job))
        .routes(routes!(audit_log))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why, for the audit log (at most 500 characters).
    #[schema(max_length = 500)]
    reason: Option<String>,
}

impl ReasonRequest {
    fn of(body: Option<Json<Self>>) -> Self {
        body.map(|Json(body)| body).unwrap_or_default()
    }
}

/// What a suspension did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuspensionDto {
    user_id: Uuid,
    /// Logins whose refresh token was revoked.
    revoked_sessions: u64,
    /// The broadcast that was ended, if the user was on air.
    ended_stream: Option<Uuid>,
}

/// A dead-lettered job (also `onair jobs dead`'s lines).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadJobDto {
    id: Uuid,
    kind: String,
    attempts: i32,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    /// The job's JSON payload (a string when it is not JSON).
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

impl From<DeadJob> for DeadJobDto {
    fn from(job: DeadJob) -> Self {
        Self {
            id: job.id,
            kind: job.kind,
            attempts: job.attempts,
            last_error: job.last_error,
            created_at: job.created_at.get(),
            payload: serde_json::from_str(&job.payload)
                .unwrap_or(serde_json::Value::String(job.payload)),
        }
    }
}

/// One admin action (also `onair admin audit`'s lines).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryDto {
    id: Uuid,
    /// The admin who acted; null for the command line.
    actor_id: Option<Uuid>,
    /// `api` or `cli`.
    actor: String,
    /// `user.suspend`, `user.unsuspend`, `user.grant_admin`, `user.revoke_admin`,
    /// `user.create_admin`, `stream.end` or `job.revive`.
    action: String,
    /// `user`, `stream` or `job`.
    target_kind: String,
    target_id: Uuid,
    /// The reason given and what the action changed.
    #[schema(value_type = Object)]
    details: serde_json::Value,
    created_at: DateTime<Utc>,
}

impl From<AuditEntry> for AuditEntryDto {
    fn from(entry: AuditEntry) -> Self {
        Self {
            id: entry.id,
            actor_id: entry.actor_id,
            actor: entry.actor,
            action: entry.action,
            target_kind: entry.target_kind,
            target_id: entry.target_id,
            details: serde_json::from_str(&entry.details)
                .unwrap_or(serde_json::Value::String(entry.details)),
            created_at: entry.created_at.get(),
        }
    }
}

/// Suspend an account: it is logged out everywhere (refresh tokens revoked), its broadcast
/// ends and its encoder is cut, and it can no longer log in, refresh or go live until it
/// is unsuspended. An access token it holds stays valid for other requests until it
/// expires. Suspending a suspended account is a conflict (nothing is recorded).
#[utoipa::path(post, path = "/admin/users/{id}/suspend", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body(content = Option<ReasonRequest>, description = "Optional"),
    responses((status = 200, body = SuspensionDto), (status = 401, body = ErrorBody), (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "`already_suspended`", body = ErrorBody),
        (status = 422, description = "`cannot_suspend_self`, or a reason too long", body = ErrorBody)))]
async fn suspend_user(
    State(admin): State<Arc<Admin>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
    body: Option<Json<ReasonRequest>>,
) -> Result<Json<SuspensionDto>, ApiError> {
    let actor = admin.authorize(me).await?;
    let request = ReasonRequest::of(body);
    let Suspension {
        revoked_sessions,
        ended_stream,
    } = admin.suspend(actor, id, request.reason.as_deref()).await?;
    Ok(Json(SuspensionDto {
        user_id: id,
        revoked_sessions,
        ended_stream,
    }))
}

/// Lift an account's suspension. It logs in again to get new tokens.
#[utoipa::path(post, path = "/admin/users/{id}/unsuspend", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Unsuspended"), (status = 401, body = ErrorBody), (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "`not_suspended`", body = ErrorBody)))]
async fn unsuspend_user(
    State(admin): State<Arc<Admin>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let actor = admin.authorize(me).await?;
    admin.unsuspend(actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End any live (or offline, waiting for its encoder) broadcast and cut its encoder.
#[utoipa::path(post, path = "/admin/streams/{id}/end", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body(content = Option<ReasonRequest>, description = "Optional"),
    responses((status = 200, body = StreamDto), (status = 401, body = ErrorBody), (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "`stream_not_live`: it has ended", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn end_broadcast(
    State(admin): State<Arc<Admin>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
    body: Option<Json<ReasonRequest>>,
) -> Result<Json<StreamDto>, ApiError> {
    let actor = admin.authorize(me).await?;
    let request = ReasonRequest::of(body);
    let stream = admin
        .end_broadcast(actor, id, request.reason.as_deref())
        .await?;
    Ok(Json(stream.into()))
}

/// Dead-lettered background jobs, newest first.
#[utoipa::path(get, path = "/admin/jobs/dead", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = PageBody<DeadJobDto>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody)))]
async fn dead_jobs(
    State(admin): State<Arc<Admin>>,
    State(cursors): State<Arc<Cursors>>,
    AuthUser(me): AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<DeadJobDto>>, ApiError> {
    admin.authorize(me).await?;
    let fetch = async |limit, cursor| admin.dead_jobs(limit, cursor).await;
    cursors.page(&query, fetch, DeadJobDto::from).await
}

/// Queue a dead job again, with a fresh attempt count.
#[utoipa::path(post, path = "/admin/jobs/{id}/revive", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Queued again"), (status = 401, body = ErrorBody), (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 404, description = "`not_found`: no such dead job", body = ErrorBody)))]
async fn revive_job(
    State(admin): State<Arc<Admin>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let actor = admin.authorize(me).await?;
    admin.revive_job(actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The audit log of admin actions (API and command line), newest first.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = PageBody<AuditEntryDto>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody)))]
async fn audit_log(
    State(admin): State<Arc<Admin>>,
    State(cursors): State<Arc<Cursors>>,
    AuthUser(me): AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<AuditEntryDto>>, ApiError> {
    admin.authorize(me).await?;
    let fetch = async |limit, cursor| admin.audit(limit, cursor).await;
    cursors.page(&query, fetch, AuditEntryDto::from).await
}
