//! Accounts and sessions (review M2): signup, login, refresh-token rotation with reuse
//! detection, logout. Refresh tokens are random, opaque, stored only as SHA-256 and
//! rotated on every use; access tokens come from [`crate::identity`]. The web UI's refresh
//! token travels in an httpOnly cookie instead of JSON bodies (`web_session`).

mod password;
mod web_session;

pub use password::PasswordHashing;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
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
use crate::rate_limit::RateLimits;
use crate::secrets::{hash_token, random_token};
use web_session::WebClient;

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
    /// Absent for the web UI (`x-onair-client: web`): it is in the `onair_refresh`
    /// httpOnly cookie instead, out of reach of the page's scripts.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
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
    passwords: PasswordHashing,
    /// No refresh beyond this after the login (the sliding refresh alone would let a
    /// stolen token live forever).
    session_max_age: Duration,
    /// Login attempts per account (the middleware counts them per client address).
    limits: Arc<RateLimits>,
}

impl Accounts {
    pub fn new(
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        access_tokens: Arc<AccessTokens>,
        refresh_token_ttl: Duration,
        passwords: PasswordHashing,
        session_max_age: Duration,
        limits: Arc<RateLimits>,
    ) -> Self {
        Self {
            users,
            sessions,
            access_tokens,
            refresh_token_ttl,
            passwords,
            session_max_age,
            limits,
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
            password_hash: self.passwords.hash(password).await?,
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
        let suspended = credentials.as_ref().is_some_and(|c| c.suspended);
        let (user_id, stored) = credentials.map(|c| (c.id, c.password_hash)).unzip();
        // Counted here rather than in a middleware, which would have to buffer and parse
        // the body again: once the account is known (its username and email share one
        // quota), before the password is hashed.
        let account = user_id.map_or(login, |id| id.to_string());
        self.limits.check_login(&account).await?;
        if !self.passwords.verify(request.password, stored).await? {
            return Err(ApiError::InvalidCredentials);
        }
        let user_id = user_id.ok_or(ApiError::InvalidCredentials)?;
        // Told only to whoever knows the password.
        if suspended {
            return Err(ApiError::AccountSuspended);
        }
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
                Timestamp::from(chrono::Utc::now() - self.session_max_age),
            )
            .await?;
        match rotation {
            RefreshRotation::Rotated { user_id } => Ok(self.session(user_id, replacement)),
            RefreshRotation::Reused => {
                tracing::warn!("refresh token reuse detected; token family revoked");
                Err(ApiError::RefreshTokenReused)
            }
            RefreshRotation::SessionExpired => Err(ApiError::SessionExpired),
            RefreshRotation::Invalid => Err(ApiError::InvalidRefreshToken),
            RefreshRotation::Suspended => Err(ApiError::AccountSuspended),
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
            refresh_token: Some(refresh_token),
        }
    }

    /// For the web UI, moves the refresh token out of `session` into the cookie.
    fn hand_over(&self, web: Option<&WebClient>, session: &mut Session) -> Option<HeaderMap> {
        let web = web?;
        let token = session.refresh_token.take()?;
        Some(web.store(&token, self.refresh_token_ttl))
    }

    fn refresh_expiry(&self) -> Timestamp {
        Timestamp::from(chrono::Utc::now() + self.refresh_token_ttl)
    }
}

/// `x-onair-client: web` and the cookie it brings into play, for each session operation.
const WEB_CLIENT_DOC: &str = "`web` (the web UI): the refresh token travels in the httpOnly \
    `onair_refresh` cookie (path `/api/auth`) instead of the JSON body. Refused with 403 \
    `cross_origin_refused` when an `Origin` header names another host.";

/// Create an account and log it in.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupRequest,
    params(("x-onair-client" = Option<String>, Header, description = WEB_CLIENT_DOC)),
    responses(
        (status = 201, body = SignupResponse, headers(("set-cookie" = String, description = "The refresh cookie, for `x-onair-client: web`"))),
        (status = 403, description = "`cross_origin_refused`", body = ErrorBody),
        (status = 409, description = "`username_taken` or `email_taken`", body = ErrorBody),
        (status = 422, description = "`validation_failed`", body = ErrorBody),
    ))]
async fn signup(
    State(accounts): State<Arc<Accounts>>,
    web: Option<WebClient>,
    Json(request): Json<SignupRequest>,
) -> Result<Response, ApiError> {
    let mut response = accounts.signup(request).await?;
    let cookie = accounts.hand_over(web.as_ref(), &mut response.session);
    Ok((StatusCode::CREATED, cookie, Json(response)).into_response())
}

/// Exchange a login (username or email) and password for tokens.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    params(("x-onair-client" = Option<String>, Header, description = WEB_CLIENT_DOC)),
    responses(
        (status = 200, body = Session, headers(("set-cookie" = String, description = "The refresh cookie, for `x-onair-client: web`"))),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`cross_origin_refused`, or `account_suspended` (right password, suspended account)", body = ErrorBody)))]
async fn login(
    State(accounts): State<Arc<Accounts>>,
    web: Option<WebClient>,
    Json(request): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let mut session = accounts.login(request).await?;
    let cookie = accounts.hand_over(web.as_ref(), &mut session);
    Ok((cookie, Json(session)).into_response())
}

/// Trade a refresh token for a new pair. Each refresh token works once; presenting a
/// spent one revokes every session descended from the same login. No refresh works
/// beyond the sessions' maximum age after the login (`session_expired`). The web UI sends no
/// body: its token comes from the cookie, which is rotated (or cleared when refused).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Optional with `x-onair-client: web` (then the cookie is used)"),
    params(("x-onair-client" = Option<String>, Header, description = WEB_CLIENT_DOC)),
    responses(
        (status = 200, body = Session, headers(("set-cookie" = String, description = "The rotated refresh cookie, for `x-onair-client: web`"))),
        (status = 401, description = "`invalid_refresh_token`, `refresh_token_reused`, `session_expired` or `missing_refresh_token`", body = ErrorBody),
        (status = 403, description = "`cross_origin_refused`, or `account_suspended`", body = ErrorBody)))]
async fn refresh(
    State(accounts): State<Arc<Accounts>>,
    web: Option<WebClient>,
    body: Option<Json<RefreshRequest>>,
) -> Result<Response, ApiError> {
    let presented = presented_token(body, web.as_ref())?;
    match accounts.refresh(&presented).await {
        Ok(mut session) => {
            let cookie = accounts.hand_over(web.as_ref(), &mut session);
            Ok((cookie, Json(session)).into_response())
        }
        // A spent or unknown token is of no further use: the browser forgets it.
        Err(error) => Ok((web.map(|w| w.clear()), error).into_response()),
    }
}

/// End the session the refresh token belongs to (the web UI's cookie is cleared). Access
/// tokens already issued stay valid until they expire (at most the access-token lifetime).
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Optional with `x-onair-client: web` (then the cookie is used)"),
    params(("x-onair-client" = Option<String>, Header, description = WEB_CLIENT_DOC)),
    responses(
        (status = 204, description = "Logged out (also for unknown tokens, or no cookie)", headers(("set-cookie" = String, description = "Clears the refresh cookie, for `x-onair-client: web`"))),
        (status = 401, description = "`missing_refresh_token`", body = ErrorBody),
        (status = 403, description = "`cross_origin_refused`", body = ErrorBody)))]
async fn logout(
    State(accounts): State<Arc<Accounts>>,
    web: Option<WebClient>,
    body: Option<Json<RefreshRequest>>,
) -> Result<Response, ApiError> {
    let cleared = web.as_ref().map(WebClient::clear);
    match presented_token(body, web.as_ref()) {
        Ok(token) => accounts.logout(&token).await?,
        // The web UI logging out without a cookie: nothing to revoke.
        Err(ApiError::MissingRefreshToken) if web.is_some() => {}
        Err(error) => return Err(error),
    }
    Ok((cleared, StatusCode::NO_CONTENT).into_response())
}

/// The refresh token of a refresh or logout: the body's, else the web UI's cookie.
fn presented_token(
    body: Option<Json<RefreshRequest>>,
    web: Option<&WebClient>,
) -> Result<String, ApiError> {
    match (body, web.and_then(WebClient::refresh_token)) {
        (Some(Json(request)), _) => Ok(request.refresh_token),
        (None, Some(cookie)) => Ok(cookie.to_owned()),
        (None, None) => Err(ApiError::MissingRefreshToken),
    }
}
