//! Accounts and sessions (review M2): signup, login, refresh-token rotation with reuse
//! detection, logout.

mod extract;
mod password;
mod tokens;

pub use extract::{AuthUser, MaybeAuthUser};
pub use tokens::{AccessTokens, derive_key, random_token};

use axum::extract::State;
use axum::http::StatusCode;
use onair_core::{Email, Password, Username};
use onair_store::{NewUser, RefreshRotation, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody, Json};
use crate::state::AppState;
use crate::users::ProfileDto;

pub fn router() -> OpenApiRouter<AppState> {
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
    username: String,
    email: String,
    /// 8–128 characters.
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

impl AppState {
    async fn open_session(&self, user_id: Uuid) -> Result<Session, ApiError> {
        let refresh_token = random_token();
        self.store
            .insert_refresh_token(
                user_id,
                &tokens::hash_token(&refresh_token),
                self.refresh_expiry(),
            )
            .await?;
        Ok(self.session(user_id, refresh_token))
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
    State(state): State<AppState>,
    Json(request): Json<SignupRequest>,
) -> Result<(StatusCode, Json<SignupResponse>), ApiError> {
    let username = Username::parse(&request.username)?;
    let email = Email::parse(&request.email)?;
    let password = Password::parse(&request.password)?;
    let user = state
        .store
        .create_user(NewUser {
            id: Uuid::now_v7(),
            username,
            email,
            password_hash: password::hash(password).await?,
            created_at: Timestamp::now(),
        })
        .await?;
    let session = state.open_session(user.id).await?;
    let user = ProfileDto::new(user, None);
    Ok((StatusCode::CREATED, Json(SignupResponse { user, session })))
}

/// Exchange a login (username or email) and password for tokens.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Session), (status = 401, description = "`invalid_credentials`", body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    Json(request): Json<LoginRequest>,
) -> Result<Json<Session>, ApiError> {
    let login = request.login.trim().to_lowercase();
    let credentials = state.store.credentials(&login).await?;
    let (user_id, stored) = credentials.map(|c| (c.id, c.password_hash)).unzip();
    if !password::verify(request.password, stored).await {
        return Err(ApiError::InvalidCredentials);
    }
    let user_id = user_id.ok_or(ApiError::InvalidCredentials)?;
    Ok(Json(state.open_session(user_id).await?))
}

/// Trade a refresh token for a new pair. Each refresh token works once; presenting a
/// spent one revokes every session descended from the same login.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Session),
        (status = 401, description = "`invalid_refresh_token` or `refresh_token_reused`", body = ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    Json(request): Json<RefreshRequest>,
) -> Result<Json<Session>, ApiError> {
    let replacement = random_token();
    let rotation = state
        .store
        .rotate_refresh_token(
            &tokens::hash_token(&request.refresh_token),
            &tokens::hash_token(&replacement),
            state.refresh_expiry(),
        )
        .await?;
    match rotation {
        RefreshRotation::Rotated { user_id } => Ok(Json(state.session(user_id, replacement))),
        RefreshRotation::Reused => {
            tracing::warn!("refresh token reuse detected; token family revoked");
            Err(ApiError::RefreshTokenReused)
        }
        RefreshRotation::Invalid => Err(ApiError::InvalidRefreshToken),
    }
}

/// End the session the refresh token belongs to. Access tokens already issued stay valid
/// until they expire (at most the access-token lifetime).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Logged out (also for unknown tokens)")))]
async fn logout(
    State(state): State<AppState>,
    Json(request): Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .revoke_refresh_family(&tokens::hash_token(&request.refresh_token))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
