//! Public profiles, profile editing and the follow graph.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use onair_core::{AvatarUrl, Bio, DisplayName, Username};
use onair_store::{FollowEntry, FollowStore, ProfilePatch, StoreError, UserProfile, UserStore};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::avatars::Avatars;
use crate::caches::Caches;
use crate::dto::{ProfileDto, UserSummaryDto, parse_clearable};
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::identity::{AccessTokens, AuthUser, MaybeAuthUser};
use crate::pagination::{PageBody, PageQuery, UserLists};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Users>: FromRef<S>,
    Arc<AccessTokens>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(get_me, update_me))
        .routes(routes!(get_profile))
        .routes(routes!(get_profile_by_username))
        .routes(routes!(follow, unfollow))
        .routes(routes!(followers))
        .routes(routes!(following))
}

/// Profiles and follows.
pub struct Users {
    users: Arc<dyn UserStore>,
    follows: Arc<dyn FollowStore>,
    /// Profile edits go through it: an edit may replace an uploaded avatar.
    avatars: Arc<Avatars>,
    lists: UserLists,
    caches: Arc<Caches>,
}

impl Users {
    pub fn new(
        users: Arc<dyn UserStore>,
        follows: Arc<dyn FollowStore>,
        avatars: Arc<Avatars>,
        lists: UserLists,
        caches: Arc<Caches>,
    ) -> Self {
        Self {
            users,
            follows,
            avatars,
            lists,
            caches,
        }
    }

    /// The caller's own profile, from the database: they must see their own edits at once.
    async fn own_profile(&self, me: Uuid) -> Result<UserProfile, ApiError> {
        self.users
            .profile(me)
            .await?
            .ok_or(ApiError::NotFound("user"))
    }

    /// `viewer`'s view of `id`'s profile: whether they follow it, when logged in.
    async fn public_profile(&self, id: Uuid, viewer: Option<Uuid>) -> Result<ProfileDto, ApiError> {
        let profile = self
            .caches
            .profile(&*self.users, id)
            .await?
            .ok_or(ApiError::NotFound("user"))?;
        self.seen_by(profile, viewer).await
    }

    /// [`Users::public_profile`] by username, in any case. A name no account can have
    /// is simply not found.
    async fn public_profile_by_username(
        &self,
        username: &str,
        viewer: Option<Uuid>,
    ) -> Result<ProfileDto, ApiError> {
        let not_found = || ApiError::NotFound("user");
        let username = Username::parse(username).map_err(|_| not_found())?;
        let profile = self
            .caches
            .profile_by_username(&*self.users, &username)
            .await?
            .ok_or_else(not_found)?;
        self.seen_by(profile, viewer).await
    }

    /// `profile` as `viewer` sees it: whether they follow it, when logged in.
    async fn seen_by(
        &self,
        profile: UserProfile,
        viewer: Option<Uuid>,
    ) -> Result<ProfileDto, ApiError> {
        let id = profile.id;
        let followed_by_you = match viewer {
            Some(viewer) if viewer != id => Some(self.follows.is_following(viewer, id).await?),
            Some(_) => Some(false),
            None => None,
        };
        Ok(ProfileDto::new(profile, followed_by_you))
    }

    async fn update(
        &self,
        me: Uuid,
        request: UpdateProfileRequest,
    ) -> Result<ProfileDto, ApiError> {
        let patch = request.into_patch()?;
        let profile = self.avatars.update_profile(me, patch).await?;
        Ok(ProfileDto::own(profile))
    }

    async fn follow(&self, me: Uuid, id: Uuid) -> Result<(), ApiError> {
        if me == id {
            return Err(ApiError::CannotFollowSelf);
        }
        match self.follows.follow(me, id).await {
            Ok(_) => {
                self.counts_changed(me, id).await;
                Ok(())
            }
            Err(StoreError::NotFound) => Err(ApiError::NotFound("user")),
            Err(e) => Err(e.into()),
        }
    }

    async fn unfollow(&self, me: Uuid, id: Uuid) -> Result<(), ApiError> {
        self.follows.unfollow(me, id).await?;
        self.counts_changed(me, id).await;
        Ok(())
    }

    /// A follow changed both users' counts.
    async fn counts_changed(&self, follower: Uuid, followed: Uuid) {
        self.caches.profile_changed(follower).await;
        self.caches.profile_changed(followed).await;
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

/// Fields to change; absent fields stay as they are, `null` clears an optional one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    #[serde(default, deserialize_with = "crate::dto::nullable")]
    #[schema(value_type = Option<String>)]
    display_name: Option<Option<String>>,
    bio: Option<String>,
    #[serde(default, deserialize_with = "crate::dto::nullable")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
    /// Record broadcasts for archives (on by default).
    record_broadcasts: Option<bool>,
}

impl UpdateProfileRequest {
    fn into_patch(self) -> Result<ProfilePatch, ApiError> {
        Ok(ProfilePatch {
            display_name: parse_clearable(self.display_name, DisplayName::parse)?,
            bio: self.bio.as_deref().map(Bio::parse).transpose()?,
            avatar_url: parse_clearable(self.avatar_url, AvatarUrl::parse)?,
            record_broadcasts: self.record_broadcasts,
        })
    }
}

/// The caller's own profile.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = ProfileDto), (status = 401, body = ErrorBody), (status = 404, description = "`not_found`: the token's account no longer exists", body = ErrorBody)))]
async fn get_me(
    State(users): State<Arc<Users>>,
    AuthUser(me): AuthUser,
) -> Result<Json<ProfileDto>, ApiError> {
    Ok(Json(ProfileDto::own(users.own_profile(me).await?)))
}

/// Edit the caller's profile.
#[utoipa::path(patch, path = "/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateProfileRequest,
    responses((status = 200, body = ProfileDto), (status = 401, body = ErrorBody), (status = 404, description = "`not_found`: the token's account no longer exists", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_me(
    State(users): State<Arc<Users>>,
    AuthUser(me): AuthUser,
    Json(request): Json<UpdateProfileRequest>,
) -> Result<Json<ProfileDto>, ApiError> {
    Ok(Json(users.update(me, request).await?))
}

/// A user's public profile.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security((), ("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ProfileDto), (status = 404, body = ErrorBody)))]
async fn get_profile(
    State(users): State<Arc<Users>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<ProfileDto>, ApiError> {
    Ok(Json(users.public_profile(id, viewer).await?))
}

/// A user's public profile, by username (case-insensitive).
#[utoipa::path(get, path = "/users/by-username/{username}", tag = "users", security((), ("bearer" = [])),
    params(("username" = String, Path, description = "3–25 of `a-z 0-9 _`, in any case")),
    responses((status = 200, body = ProfileDto), (status = 404, description = "`not_found`: no user has this name", body = ErrorBody)))]
async fn get_profile_by_username(
    State(users): State<Arc<Users>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    Path(username): Path<String>,
) -> Result<Json<ProfileDto>, ApiError> {
    Ok(Json(
        users.public_profile_by_username(&username, viewer).await?,
    ))
}

/// Follow a user. Idempotent.
#[utoipa::path(post, path = "/users/{id}/follow", tag = "follows", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Following"), (status = 404, body = ErrorBody),
        (status = 422, description = "`cannot_follow_self`", body = ErrorBody)))]
async fn follow(
    State(users): State<Arc<Users>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    users.follow(me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop following a user. Idempotent.
#[utoipa::path(delete, path = "/users/{id}/follow", tag = "follows", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Not following")))]
async fn unfollow(
    State(users): State<Arc<Users>>,
    AuthUser(me): AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    users.unfollow(me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who follows a user, newest first.
#[utoipa::path(get, path = "/users/{id}/followers", tag = "follows", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<FollowDto>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn followers(
    State(users): State<Arc<Users>>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<FollowDto>>, ApiError> {
    let follows = &users.follows;
    let fetch = async |limit, cursor| follows.followers(id, limit, cursor).await;
    users.lists.page(id, &query, fetch, FollowDto::from).await
}

/// Whom a user follows, newest first.
#[utoipa::path(get, path = "/users/{id}/following", tag = "follows", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<FollowDto>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn following(
    State(users): State<Arc<Users>>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<FollowDto>>, ApiError> {
    let follows = &users.follows;
    let fetch = async |limit, cursor| follows.following(id, limit, cursor).await;
    users.lists.page(id, &query, fetch, FollowDto::from).await
}
