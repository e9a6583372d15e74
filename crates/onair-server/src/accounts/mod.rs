//! Accounts and sessions (review M2): signup, login, refresh-token rotation with reuse
//! detection, logout. Refresh tokens are random, opaque, stored only as SHA-256 and
//! rotated on every use; access tokens come from [`crate::identity`].

mod password;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use onair_core::{Email, Password, Username};
use onair_store::{NewUser, RefreshRotation, SessionStore, Timestamp, UserStore};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::dto::ProfileDto;
use crate::error::{ApiError, ErrorBody, Json};
use crate::identity::AccessTokens;
use crate::secrets::{hash_token, random_token};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Accounts>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// 3–25 letters, digits or underscores; case-insensitive.
    #[schema(min_length = 3)]
    username: String,
    email: String,
    /// 8–128 characters.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username or email.
    login: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// A fresh pair of tokens. Send the access token as `Authorization: Bearer …`; trade the
/// refresh token (once) for a new pair before the access token expires.
#[derive(Serialize, ToSchema)]
pub struct Session {
    user_id: Uuid,
    access_token: String,
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    refresh_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignupResponse {
    user: ProfileDto,
    #[serde(flatten)]
    session: Session,
}

/// Signing up, logging in and out, and refresh-token rotation.
pub struct Accounts {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    access_tokens: Arc<AccessTokens>,
    refresh_token_ttl: Duration,
}

impl Accounts {
    pub fn new(
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        access_tokens: Arc<AccessTokens>,
        refresh_token_ttl: Duration,
    ) -> Self {
        Self {
            users,
            sessions,
            access_tokens,
            refresh_token_ttl,
        }
    }

    /// Creates the user and its first session in one transaction: a signup never
    /// leaves an account behind that its client holds no tokens for.
    async fn signup(&self, request: SignupRequest) -> Result<SignupResponse, ApiError> {
        let username = Username::parse(&request.username)?;
        let email = Email::parse(&request.email)?;
        let password = Password::parse(&request.password)?;
        let new_user = NewUser {
            id: Uuid::now_v7(),
            username,
            email,
            password_hash: password::hash(password).await?,
            created_at: Timestamp::now(),
        };
        let refresh_token = random_token();
        let user = self
            .users
            .create_user_with_session(new_user, &hash_token(&refresh_token), self.refresh_expiry())
            .await?;
        let session = self.session(user.id, refresh_token);
        Ok(SignupResponse {
            user: ProfileDto::new(user, None),
            session,
        })
    }

    async fn login(&self, request: LoginRequest) -> Result<Session, ApiError> {
        let login = request.login.trim().to_lowercase();
        let credentials = self.users.credentials(&login).await?;
        let (user_id, stored) = credentials.map(|c| (c.id, c.password_hash)).unzip();
        if !password::verify(request.password, stored).await {
            return Err(ApiError::InvalidCredentials);
        }
        let user_id = user_id.ok_or(ApiError::InvalidCredentials)?;
        let refresh_token = random_token();
        self.sessions
            .insert_refresh_token(user_id, &hash_token(&refresh_token), self.refresh_expiry())
            .await?;
        Ok(self.session(user_id, refresh_token))
    }

    async fn refresh(&self, presented: &str) -> Result<Session, ApiError> {
        let replacement = random_token();
        let rotation = self
            .sessions
            .rotate_refresh_token(
                &hash_token(presented),
                &hash_token(&replacement),
                self.refresh_expiry(),
            )
            .await?;
        match rotation {
            RefreshRotation::Rotated { user_id } => Ok(self.session(user_id, replacement)),
            RefreshRotation::Reused => {
                tracing::warn!("refresh token reuse detected; token family revoked");
                Err(ApiError::RefreshTokenReused)
            }
            RefreshRotation::Invalid => Err(ApiError::InvalidRefreshToken),
        }
    }

    async fn logout(&self, presented: &str) -> Result<(), ApiError> {
        Ok(self
            .sessions
            .revoke_refresh_family(&hash_token(presented))
            .await?)
    }

    fn session(&self, user_id: Uuid, refresh_token: String) -> Session {
        Session {
            user_id,
            access_token: self.access_tokens.issue(user_id),
            token_type: "Bearer",
            expires_in: self.access_tokens.ttl.as_secs(),
            refresh_token,
        }
    }

    fn refresh_expiry(&self) -> Timestamp {
        Timestamp::from(chrono::Utc::now() + self.refresh_token_ttl)
    }
}

/// Create an account and log it in.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupRequest,
    responses(
        (status = 201, body = SignupResponse),
        (status = 409, description = "`username_taken` or `email_taken`", body = ErrorBody),
        (status = 422, description = "`validation_failed`", body = ErrorBody),
    ))]
async fn signup(
    State(accounts): State<Arc<Accounts>>,
    Json(request): Json<SignupRequest>,
) -> Result<(StatusCode, Json<SignupResponse>), ApiError> {
    Ok((StatusCode::CREATED, Json(accounts.signup(request).await?)))
}

/// Exchange a login (username or email) and password for tokens.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Session), (status = 401, description = "`invalid_credentials`", body = ErrorBody)))]
async fn login(
    State(accounts): State<Arc<Accounts>>,
    Json(request): Json<LoginRequest>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(accounts.login(request).await?))
}

/// Trade a refresh token for a new pair. Each refresh token works once; presenting a
/// spent one revokes every session descended from the same login.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Session),
        (status = 401, description = "`invalid_refresh_token` or `refresh_token_reused`", body = ErrorBody)))]
async fn refresh(
    State(accounts): State<Arc<Accounts>>,
    Json(request): Json<RefreshRequest>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(accounts.refresh(&request.refresh_token).await?))
}

/// End the session the refresh token belongs to. Access tokens already issued stay valid
/// until they expire (at most the access-token lifetime).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Logged out (also for unknown tokens)")))]
async fn logout(
    State(accounts): State<Arc<Accounts>>,
    Json(request): Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    accounts.logout(&request.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}
