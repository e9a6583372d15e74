//! The one error type handlers return, and the extractors that turn axum's rejections into
//! it. Every failure reaches the client as `{"error":{"code":"…","message":"…"}}` with a
//! stable snake_case code and the right status.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use onair_core::{CursorError, LimitError, ValidationError};
use onair_infra::MediaStoreError;
use onair_store::{Conflict, StoreError};
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// What [`ApiError::UnsupportedMediaType`] asks for where a JSON body is expected.
pub const JSON_BODY: &str = "JSON (Content-Type: application/json)";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidBody(String),
    /// What the body's `Content-Type` should have been.
    #[error("the request body must be {0}")]
    UnsupportedMediaType(&'static str),
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    InvalidPath(String),
    #[error(transparent)]
    InvalidCursor(#[from] CursorError),
    #[error(transparent)]
    InvalidLimit(#[from] LimitError),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("authentication required: send Authorization: Bearer <access token>")]
    Unauthorized,
    #[error("the access token is invalid")]
    InvalidToken,
    #[error("the access token has expired: refresh it")]
    TokenExpired,
    #[error("wrong login or password")]
    InvalidCredentials,
    #[error("the refresh token is invalid or expired: log in again")]
    InvalidRefreshToken,
    #[error("the refresh token was already used: every session of that login is revoked")]
    RefreshTokenReused,
    #[error("the session is older than its maximum age: log in again")]
    SessionExpired,
    #[error(
        "no refresh token: send {{\"refresh_token\": …}}, or the session cookie with x-onair-client: web"
    )]
    MissingRefreshToken,
    #[error("the session cookie is only accepted from this site's own pages")]
    CrossOriginRefused,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("this account is suspended")]
    AccountSuspended,
    #[error("an admin cannot suspend their own account")]
    CannotSuspendSelf,
    #[error("publish refused: {0}")]
    PublishRefused(onair_media::PublishRefused),
    #[error("wrong or missing media hook secret")]
    InvalidHookSecret,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(Conflict),
    #[error(
        "the viewer token is invalid, expired or for another stream: get a new one from POST /api/streams/{{id}}/viewer-token"
    )]
    InvalidViewerToken,
    #[error("you have no live stream")]
    StreamNotLive,
    #[error("you have reached the limit of {0}")]
    LimitReached(&'static str),
    #[error("you cannot follow yourself")]
    CannotFollowSelf,
    #[error("the picture could not be read: send a PNG, JPEG or WebP image")]
    UnsupportedImage,
    #[error("you are banned from this chat")]
    BannedFromChat,
    #[error("this endpoint speaks WebSocket: send an Upgrade request")]
    WebSocketRequired,
    #[error("too many requests: retry in {} s", .0.reset_secs)]
    RateLimited(RateLimitState),
    #[error("this server has no room for more live connections, retry shortly")]
    TooManyConnections,
    #[error("the request took too long")]
    Timeout,
    #[error("the service is temporarily unavailable, retry shortly")]
    Unavailable,
    /// An LL-HLS blocking request whose segment or part did not appear in time.
    #[error("the requested part of the live playlist did not appear in time: reload")]
    PartNotReady,
    #[error("{0}")]
    InvalidHeader(&'static str),
    #[error("tipping is not enabled on this server")]
    PaymentsDisabled,
    /// A webhook whose `Stripe-Signature` does not prove it came from Stripe, now.
    #[error("invalid Stripe-Signature: {0}")]
    InvalidSignature(String),
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// Stripe refused the payment request; its message says why.
    #[error("the payment was refused: {0}")]
    PaymentRefused(String),
    /// A dependency's circuit breaker is open: retry in this many seconds.
    #[error("a service this needs is failing, retry in {0} s")]
    UnavailableFor(u64),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_)
            | Self::InvalidQuery(_)
            | Self::InvalidPath(_)
            | Self::InvalidCursor(_)
            | Self::InvalidLimit(_)
            | Self::WebSocketRequired
            | Self::InvalidHeader(_)
            | Self::InvalidSignature(_) => StatusCode::BAD_REQUEST,
            Self::InvalidBody(_)
            | Self::Validation(_)
            | Self::CannotFollowSelf
            | Self::CannotSuspendSelf
            | Self::InvalidViewerToken
            | Self::UnsupportedImage
            | Self::IdempotencyKeyReused
            | Self::PaymentRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::InvalidCredentials
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused
            | Self::SessionExpired
            | Self::MissingRefreshToken
            | Self::InvalidHookSecret => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_)
            | Self::AccountSuspended
            | Self::CrossOriginRefused
            | Self::PublishRefused(_)
            | Self::BannedFromChat => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::RouteNotFound | Self::PaymentsDisabled => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) | Self::StreamNotLive | Self::LimitReached(_) => StatusCode::CONFLICT,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout
            | Self::Unavailable
            | Self::PartNotReady
            | Self::UnavailableFor(_)
            | Self::TooManyConnections => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, documented code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::InvalidBody(_) => "invalid_body",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidQuery(_) => "invalid_query",
            Self::InvalidPath(_) => "invalid_path",
            Self::InvalidCursor(_) => "invalid_cursor",
            Self::InvalidLimit(_) => "invalid_limit",
            Self::Validation(_) => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::SessionExpired => "session_expired",
            Self::MissingRefreshToken => "missing_refresh_token",
            Self::CrossOriginRefused => "cross_origin_refused",
            Self::Forbidden(_) => "forbidden",
            Self::AccountSuspended => "account_suspended",
            Self::CannotSuspendSelf => "cannot_suspend_self",
            Self::PublishRefused(_) => "publish_refused",
            Self::InvalidHookSecret => "invalid_hook_secret",
            Self::NotFound(_) => "not_found",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict(Conflict::Username) => "username_taken",
            Self::Conflict(Conflict::Email) => "email_taken",
            Self::Conflict(Conflict::ActiveStream) => "stream_already_live",
            Self::Conflict(Conflict::PushEndpoint) => "push_endpoint_taken",
            Self::Conflict(Conflict::AlreadySuspended) => "already_suspended",
            Self::Conflict(Conflict::NotSuspended) => "not_suspended",
            Self::Conflict(Conflict::Other) => "conflict",
            Self::InvalidViewerToken => "invalid_viewer_token",
            Self::StreamNotLive => "stream_not_live",
            Self::LimitReached(_) => "limit_reached",
            Self::CannotFollowSelf => "cannot_follow_self",
            Self::UnsupportedImage => "unsupported_image",
            Self::BannedFromChat => "banned",
            Self::WebSocketRequired => "websocket_required",
            Self::RateLimited(_) => "rate_limited",
            Self::TooManyConnections => "too_many_connections",
            Self::Timeout => "timeout",
            Self::Unavailable | Self::UnavailableFor(_) => "service_unavailable",
            Self::PartNotReady => "part_not_ready",
            Self::InvalidHeader(_) => "invalid_header",
            Self::PaymentsDisabled => "payments_disabled",
            Self::InvalidSignature(_) => "invalid_signature",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::PaymentRefused(_) => "payment_refused",
            Self::Internal => "internal",
        }
    }
}

/// A rate limit as the `RateLimit-Policy` and `RateLimit` headers tell it (IETF draft
/// httpapi-ratelimit-headers): `"name";q=quota;w=window` and `"name";r=remaining;t=reset`.
#[derive(Debug, Clone, Default)]
pub struct RateLimitState {
    pub policy: &'static str,
    pub quota: u32,
    pub window_secs: u64,
    pub remaining: u32,
    /// Seconds, rounded up: until the quota is whole again, or on a refusal until a
    /// request fits (then also the `Retry-After`).
    pub reset_secs: u64,
}

impl RateLimitState {
    pub const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
    pub const STATE: HeaderName = HeaderName::from_static("ratelimit");

    pub fn write(&self, headers: &mut HeaderMap) {
        let Self {
            policy,
            quota,
            window_secs,
            remaining,
            reset_secs,
        } = self;
        let mut set = |name, value: String| {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(name, value);
            }
        };
        set(
            Self::POLICY,
            format!("\"{policy}\";q={quota};w={window_secs}"),
        );
        set(
            Self::STATE,
            format!("\"{policy}\";r={remaining};t={reset_secs}"),
        );
    }
}

/// The error envelope.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_cursor`.
    code: &'static str,
    message: String,
    /// The offending field, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let field = match &self {
            Self::Validation(e) => Some(e.field),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                field,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::RateLimited(state) = &self {
            state.write(response.headers_mut());
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(state.reset_secs));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let secs = match self {
                Self::UnavailableFor(secs) => secs,
                _ => 1,
            };
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<MediaStoreError> for ApiError {
    fn from(err: MediaStoreError) -> Self {
        Self::from(&err)
    }
}

/// Also for a failure shared by several readers (held LL-HLS requests).
impl From<&MediaStoreError> for ApiError {
    /// The media store failed (retry shortly), or its breaker is open (retry when it
    /// lets a call through again).
    fn from(err: &MediaStoreError) -> Self {
        match err {
            MediaStoreError::CircuitOpen(open) => {
                Self::UnavailableFor(open.retry_after.as_secs().max(1))
            }
            other => {
                tracing::warn!(error = %other, "media store unavailable");
                Self::Unavailable
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::from(&err)
    }
}

/// Also for a failure shared by several readers (a cache's coalesced load).
impl From<&StoreError> for ApiError {
    fn from(err: &StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound("resource"),
            StoreError::Conflict(conflict) => Self::Conflict(*conflict),
            StoreError::Suspended => Self::AccountSuspended,
            StoreError::ForeignCursor => Self::InvalidCursor(CursorError),
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                Self::Unavailable
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                Self::Internal
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => Self::InvalidBody(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => Self::InvalidJson(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType(JSON_BODY),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            other => Self::InvalidJson(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::InvalidQuery(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::InvalidPath(rejection.body_text())
    }
}

/// `axum::Json` whose rejections are [`ApiError`]s, and which takes only a JSON object:
/// serde would also fill a struct from an array, field by position.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(ObjectBody(body)) =
            <axum::Json<ObjectBody<T>> as FromRequest<S>>::from_request(request, state).await?;
        Ok(Self(body))
    }
}

/// `Option<Json<T>>`: `None` for an empty body (whatever its content type), so a route
/// can take its input from the body or from elsewhere (the session cookie).
impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                _ => ApiError::InvalidJson(rejection.body_text()),
            })?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let request = Request::from_parts(parts, Body::from(bytes));
        <Self as FromRequest<S>>::from_request(request, state)
            .await
            .map(Some)
    }
}

struct ObjectBody<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectBody<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(ObjectOnly(deserializer)).map(ObjectBody)
    }
}

/// Hands the body's top-level value to `T`'s visitor only if it is an object.
struct ObjectOnly<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(MapOnly(visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct MapOnly<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for MapOnly<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(map)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` whose rejections are [`ApiError`]s.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` whose rejections are [`ApiError`]s.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);
