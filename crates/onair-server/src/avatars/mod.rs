//! Uploaded profile pictures. The picture is re-encoded ([`encode`]) to a small square
//! WebP, stored in the media store (the local media directory, or S3 in scale-out) under
//! a name made of its content hash, and served from this origin at `/media/avatars/…`
//! with immutable caching: a new picture is a new name.

mod encode;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use onair_core::AvatarUrl;
use onair_infra::MediaStore;
use onair_store::{ProfilePatch, UserProfile, UserStore};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::encode::{EncodeError, Encoder, SourceFormat};
use crate::caches::Caches;
use crate::dto::ProfileDto;
use crate::error::{ApiError, ErrorBody, Json, Path};
use crate::identity::{AccessTokens, AuthUser};

/// Largest upload accepted. Only this route takes a body this big.
const MAX_UPLOAD_BYTES: usize = 2 * 1024 * 1024;
/// Where stored avatars live in the media store, and under `/media/` on the site.
const KEY_PREFIX: &str = "avatars";
/// Served pictures are WebP: [`encode`] writes nothing else.
const EXTENSION: &str = "webp";
/// Hex digits of the content hash in a file name (128 bits).
const HASH_DIGITS: usize = 32;

/// Avatar uploads (`/api/users/me/avatar`).
pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Avatars>: FromRef<S>,
    Arc<AccessTokens>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(put_avatar, delete_avatar))
}

/// The stored pictures (`/media/avatars/…`), outside the API prefix.
pub fn files_router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Avatars>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(avatar_file))
}

/// Uploads, the profile's `avatar_url`, and the stored pictures behind it.
pub struct Avatars {
    users: Arc<dyn UserStore>,
    files: MediaStore,
    encoder: Encoder,
    /// Profiles and the live list show the picture.
    caches: Arc<Caches>,
}

impl Avatars {
    pub fn new(
        users: Arc<dyn UserStore>,
        files: MediaStore,
        ffmpeg: std::path::PathBuf,
        caches: Arc<Caches>,
    ) -> Self {
        Self {
            users,
            files,
            encoder: Encoder::new(ffmpeg),
            caches,
        }
    }

    /// Re-encodes and stores `picture` as `me`'s avatar; the one it replaces is removed.
    async fn replace(
        &self,
        me: Uuid,
        format: SourceFormat,
        picture: Bytes,
    ) -> Result<UserProfile, ApiError> {
        let avatar = self
            .encoder
            .square_webp(format, picture)
            .await
            .map_err(|e| match e {
                EncodeError::Undecodable => ApiError::UnsupportedImage,
                EncodeError::TimedOut => ApiError::Timeout,
                EncodeError::Unavailable(e) => {
                    tracing::error!(error = %e, "cannot run ffmpeg for an avatar");
                    ApiError::Unavailable
                }
            })?;
        let key = stored_key(me, &avatar);
        self.files.put(&key, avatar).await?;
        self.set(me, Some(AvatarUrl::stored(format!("/media/{key}"))))
            .await
    }

    /// Points `me`'s profile at `avatar`, or at none.
    async fn set(&self, me: Uuid, avatar: Option<AvatarUrl>) -> Result<UserProfile, ApiError> {
        let patch = ProfilePatch {
            avatar_url: Some(avatar),
            ..ProfilePatch::default()
        };
        self.update_profile(me, patch).await
    }

    /// Applies `patch` to `me`'s profile. When that changes the avatar, the picture we
    /// stored before is removed.
    pub async fn update_profile(
        &self,
        me: Uuid,
        patch: ProfilePatch,
    ) -> Result<UserProfile, ApiError> {
        let after = self.apply(me, patch).await?;
        self.caches.channel_changed(me).await;
        Ok(after)
    }

    async fn apply(&self, me: Uuid, patch: ProfilePatch) -> Result<UserProfile, ApiError> {
        if patch.avatar_url.is_none() {
            return Ok(self.users.update_profile(me, patch).await?);
        }
        let before = self
            .users
            .profile(me)
            .await?
            .ok_or(ApiError::NotFound("user"))?;
        let after = self.users.update_profile(me, patch).await?;
        let previous = before
            .avatar_url
            .as_deref()
            .and_then(|url| own_key(me, url));
        if let Some(previous) = previous
            && after.avatar_url.as_deref().and_then(|url| own_key(me, url)) != Some(previous)
            && let Err(e) = self.files.delete(previous).await
        {
            // The profile no longer points at it: an orphan file at worst.
            tracing::warn!(error = %e, key = previous, "could not remove a replaced avatar");
        }
        Ok(after)
    }
}

/// `avatars/<user>/<hash>.webp`: the content decides the name.
fn stored_key(user: Uuid, avatar: &[u8]) -> String {
    let hash = hex::encode(Sha256::digest(avatar));
    format!("{KEY_PREFIX}/{user}/{}.{EXTENSION}", &hash[..HASH_DIGITS])
}

/// The media-store key of `url` when it is a picture of `user`'s that we store.
fn own_key(user: Uuid, url: &str) -> Option<&str> {
    let key = url.strip_prefix("/media/")?;
    key.strip_prefix(&format!("{KEY_PREFIX}/{user}/"))
        .is_some_and(is_file_name)
        .then_some(key)
}

/// A name [`stored_key`] writes: the hash and the extension, nothing else.
fn is_file_name(file: &str) -> bool {
    file.strip_suffix(EXTENSION)
        .and_then(|stem| stem.strip_suffix('.'))
        .is_some_and(|hash| {
            hash.len() == HASH_DIGITS
                && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// The picture format a request declares, or 415.
fn declared_format(headers: &HeaderMap) -> Result<SourceFormat, ApiError> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(SourceFormat::of_content_type)
        .ok_or(ApiError::UnsupportedMediaType(
            "a PNG, JPEG or WebP image (Content-Type: image/png, image/jpeg or image/webp)",
        ))
}

/// Set the caller's avatar: the picture itself is the body. It is re-encoded to a
/// 256 × 256 WebP (scaled to cover, centered), without its metadata.
#[utoipa::path(put, path = "/users/me/avatar", tag = "users", security(("bearer" = [])),
    request_body(description = "The picture, at most 2 MiB", content(("image/png"), ("image/jpeg"), ("image/webp"))),
    responses((status = 200, description = "The profile, its `avatar_url` a path on this site", body = ProfileDto),
        (status = 404, description = "`not_found`: the token's account no longer exists", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 2 MiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not image/png, image/jpeg or image/webp", body = ErrorBody),
        (status = 422, description = "`unsupported_image`: not a picture of the declared type", body = ErrorBody)))]
async fn put_avatar(
    State(avatars): State<Arc<Avatars>>,
    AuthUser(me): AuthUser,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ProfileDto>, ApiError> {
    let format = declared_format(&headers)?;
    let picture = axum::body::to_bytes(body, MAX_UPLOAD_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let profile = avatars.replace(me, format, picture).await?;
    Ok(Json(ProfileDto::own(profile)))
}

/// Remove the caller's avatar.
#[utoipa::path(delete, path = "/users/me/avatar", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "The profile, `avatar_url` null", body = ProfileDto),
        (status = 404, description = "`not_found`: the token's account no longer exists", body = ErrorBody)))]
async fn delete_avatar(
    State(avatars): State<Arc<Avatars>>,
    AuthUser(me): AuthUser,
) -> Result<Json<ProfileDto>, ApiError> {
    let profile = avatars.set(me, None).await?;
    Ok(Json(ProfileDto::own(profile)))
}

/// An uploaded avatar. Its name changes with its content, so it is cached for good.
#[utoipa::path(get, path = "/media/avatars/{user_id}/{file}", tag = "users",
    params(("user_id" = Uuid, Path), ("file" = String, Path, description = "`<hash>.webp`, as in `avatar_url`")),
    responses((status = 200, description = "The picture", content((String = "image/webp"))),
        (status = 404, description = "`not_found`: no such picture (any more)", body = ErrorBody)))]
async fn avatar_file(
    State(avatars): State<Arc<Avatars>>,
    Path((user, file)): Path<(Uuid, String)>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("avatar");
    if !is_file_name(&file) {
        return Err(not_found());
    }
    let key = format!("{KEY_PREFIX}/{user}/{file}");
    let picture = avatars.files.get(&key).await?.ok_or_else(not_found)?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/webp")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        Body::from(picture),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_are_recognised_and_nothing_else() {
        let user = Uuid::now_v7();
        let key = stored_key(user, b"picture");
        let url = format!("/media/{key}");
        assert_eq!(own_key(user, &url), Some(key.as_str()));
        assert_eq!(own_key(Uuid::now_v7(), &url), None, "another user's");
        let file = key.rsplit('/').next().unwrap();
        assert!(is_file_name(file));
        for other in [
            "https://cdn.example/a.webp",
            &format!("/media/avatars/{user}/../{file}"),
            &format!("/media/avatars/{user}/{}", file.to_uppercase()),
            &format!("/media/avatars/{user}/{}.png", &file[..HASH_DIGITS]),
            &format!("/media/avatars/{user}/x{file}"),
        ] {
            assert_eq!(own_key(user, other), None, "{other}");
        }
    }
}
