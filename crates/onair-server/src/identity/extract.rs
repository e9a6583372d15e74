//! `AuthUser` (a valid access token is required) and `MaybeAuthUser` (anonymous allowed,
//! but a token that is present must be valid). They work with any application state that
//! can hand out the [`AccessTokens`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::AccessTokens;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub Uuid);

#[derive(Debug, Clone, Copy)]
pub struct MaybeAuthUser(pub Option<Uuid>);

/// `AuthUser` with how long its token has left, for a connection that must end with it.
#[derive(Debug, Clone, Copy)]
pub struct ExpiringAuthUser {
    pub user: Uuid,
    pub expires_in: Duration,
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::InvalidToken),
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Arc<AccessTokens>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = ExpiringAuthUser::from_request_parts(parts, state).await?;
        Ok(Self(auth.user))
    }
}

impl<S> FromRequestParts<S> for ExpiringAuthUser
where
    S: Send + Sync,
    Arc<AccessTokens>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?.ok_or(ApiError::Unauthorized)?;
        let (user, expires_in) = Arc::<AccessTokens>::from_ref(state).verify_expiring(token)?;
        Ok(Self { user, expires_in })
    }
}

impl<S> FromRequestParts<S> for MaybeAuthUser
where
    S: Send + Sync,
    Arc<AccessTokens>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match bearer(parts)? {
            Some(token) => Arc::<AccessTokens>::from_ref(state)
                .verify(token)
                .map(|id| Self(Some(id))),
            None => Ok(Self(None)),
        }
    }
}
