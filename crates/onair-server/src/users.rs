//! Public profiles, profile editing and the follow graph.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use onair_core::{AvatarUrl, Bio, DisplayName, ValidationError};
use onair_store::{FollowEntry, ProfilePatch, StreamOwner, UserProfile, UserSummary};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AuthUser, MaybeAuthUser};
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::pagination::{PageBody, PageQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, update_me))
        .routes(routes!(get_profile))
        .routes(routes!(follow, unfollow))
        .routes(routes!(followers))
        .routes(routes!(following))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileDto {
    id: Uuid,
    username: String,
    display_name: Option<String>,
    bio: String,
    avatar_url: Option<String>,
    follower_count: i64,
    following_count: i64,
    /// Whether the user is broadcasting now.
    is_live: bool,
    live_stream_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    /// Whether the caller follows this user (present only for logged-in callers).
    #[serde(skip_serializing_if = "Option::is_none")]
    followed_by_you: Option<bool>,
}

impl ProfileDto {
    pub fn new(profile: UserProfile, followed_by_you: Option<bool>) -> Self {
        Self {
            id: profile.id,
            username: profile.username,
            display_name: profile.display_name,
            bio: profile.bio,
            avatar_url: profile.avatar_url,
            follower_count: profile.follower_count,
            following_count: profile.following_count,
            is_live: profile.live_stream_id.is_some(),
            live_stream_id: profile.live_stream_id,
            created_at: profile.created_at.get(),
            followed_by_you,
        }
    }
}

/// How another user appears inside a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserSummaryDto {
    id: Uuid,
    username: String,
    display_name: Option<String>,
    avatar_url: Option<String>,
}

impl From<StreamOwner> for UserSummaryDto {
    fn from(owner: StreamOwner) -> Self {
        Self {
            id: owner.id,
            username: owner.username,
            display_name: owner.display_name,
            avatar_url: owner.avatar_url,
        }
    }
}

impl From<UserSummary> for UserSummaryDto {
    fn from(user: UserSummary) -> Self {
        Self {
            id: user.id,
            username: user.username,
            display_name: user.display_name,
            avatar_url: user.avatar_url,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FollowDto {
    user: UserSummaryDto,
    followed_at: DateTime<Utc>,
}

impl From<FollowEntry> for FollowDto {
    fn from(entry: FollowEntry) -> Self {
        Self {
            followed_at: entry.followed_at.get(),
            user: entry.user.into(),
        }
    }
}

/// Distinguishes an absent field (leave as is) from `null` (clear it).
pub(crate) fn nullable<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Parses a field that may be absent (`None`), cleared (`Some(None)`) or set.
pub(crate) fn parse_clearable<T>(
    field: Option<Option<String>>,
    parse: fn(&str) -> Result<T, ValidationError>,
) -> Result<Option<Option<T>>, ValidationError> {
    field
        .map(|v| v.as_deref().map(parse).transpose())
        .transpose()
}

/// Fields to change; absent fields stay as they are, `null` clears an optional one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    display_name: Option<Option<String>>,
    bio: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
}

impl UpdateProfileRequest {
    fn into_patch(self) -> Result<ProfilePatch, ApiError> {
        Ok(ProfilePatch {
            display_name: parse_clearable(self.display_name, DisplayName::parse)?,
            bio: self.bio.as_deref().map(Bio::parse).transpose()?,
            avatar_url: parse_clearable(self.avatar_url, AvatarUrl::parse)?,
        })
    }
}

async fn load_profile(state: &AppState, id: Uuid) -> Result<UserProfile, ApiError> {
    state
        .store
        .profile(id)
        .await?
        .ok_or(ApiError::NotFound("user"))
}

/// 404 for an unknown user. Lists call it only when a page comes back empty, so a
/// non-empty page costs one query.
pub(crate) async fn ensure_exists(state: &AppState, id: Uuid) -> Result<(), ApiError> {
    load_profile(state, id).await.map(drop)
}

/// The caller's own profile.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = ProfileDto), (status = 401, body = ErrorBody)))]
async fn get_me(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<ProfileDto>, ApiError> {
    Ok(Json(ProfileDto::new(load_profile(&state, me).await?, None)))
}

/// Edit the caller's profile.
#[utoipa::path(patch, path = "/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateProfileRequest,
    responses((status = 200, body = ProfileDto), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_me(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Json(request): Json<UpdateProfileRequest>,
) -> Result<Json<ProfileDto>, ApiError> {
    let profile = state
        .store
        .update_profile(me, request.into_patch()?)
        .await?;
    Ok(Json(ProfileDto::new(profile, None)))
}

/// A user's public profile.
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 200, body = ProfileDto), (status = 404, body = ErrorBody)))]
async fn get_profile(
    State(state): State<AppState>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<ProfileDto>, ApiError> {
    let profile = load_profile(&state, id).await?;
    let followed_by_you = match viewer {
        Some(viewer) if viewer != id => Some(state.store.is_following(viewer, id).await?),
        Some(_) => Some(false),
        None => None,
    };
    Ok(Json(ProfileDto::new(profile, followed_by_you)))
}

/// Follow a user. Idempotent.
#[utoipa::path(post, path = "/users/{id}/follow", tag = "follows", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Following"), (status = 404, body = ErrorBody),
        (status = 422, description = "`cannot_follow_self`", body = ErrorBody)))]
async fn follow(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if me == id {
        return Err(ApiError::CannotFollowSelf);
    }
    match state.store.follow(me, id).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(onair_store::StoreError::NotFound) => Err(ApiError::NotFound("user")),
        Err(e) => Err(e.into()),
    }
}

/// Stop following a user. Idempotent.
#[utoipa::path(delete, path = "/users/{id}/follow", tag = "follows", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Not following")))]
async fn unfollow(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.store.unfollow(me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who follows a user, newest first.
#[utoipa::path(get, path = "/users/{id}/followers", tag = "follows", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<FollowDto>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn followers(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<FollowDto>>, ApiError> {
    let (limit, cursor) = query.parse(&state)?;
    let page = state.store.followers(id, limit, cursor).await?;
    if page.items.is_empty() {
        ensure_exists(&state, id).await?;
    }
    Ok(Json(PageBody::from_page(&state, page, FollowDto::from)))
}

/// Whom a user follows, newest first.
#[utoipa::path(get, path = "/users/{id}/following", tag = "follows", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<FollowDto>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn following(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<FollowDto>>, ApiError> {
    let (limit, cursor) = query.parse(&state)?;
    let page = state.store.following(id, limit, cursor).await?;
    if page.items.is_empty() {
        ensure_exists(&state, id).await?;
    }
    Ok(Json(PageBody::from_page(&state, page, FollowDto::from)))
}
