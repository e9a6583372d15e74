//! Callbacks from external media servers (SRS, MediaMTX, Ant Media) for operators who run
//! one of those instead of the built-in ingest: their publish/unpublish events drive the
//! same broadcast lifecycle. Authenticated by a shared secret (`?secret=` in the callback
//! URL, or the `x-onair-hook-secret` header), compared in constant time.
//!
//! | server | publish | unpublish | stream key from |
//! |---|---|---|---|
//! | SRS | `on_publish` | `on_unpublish` | `stream` |
//! | MediaMTX | `authHTTPAddress` (`action: publish`) | `runOnNotReady` posting `{"path": "$MTX_PATH"}` | `path` (`live/<key>`) |
//! | Ant Media | webhook `liveStreamStarted` | webhook `liveStreamEnded` | `id` / `streamId` / `name` |

use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use onair_media::{PublishEnd, PublishRefused, stream_key_of};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Media;
use crate::error::{ApiError, ErrorBody, Json, Path};
use crate::streams::StreamKeys;

/// The fields we read from any of the three servers' payloads; the rest is ignored.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct HookPayload {
    /// SRS `on_publish`, MediaMTX `publish`/`read`, Ant Media `liveStreamStarted`…
    action: Option<String>,
    /// SRS: the stream name, i.e. the key.
    stream: Option<String>,
    /// MediaMTX: `live/<key>`.
    path: Option<String>,
    /// Ant Media: the stream id, i.e. the key.
    #[serde(rename = "streamId")]
    stream_id: Option<String>,
    id: Option<String>,
    name: Option<String>,
    /// The secret, when a server can only send it in the body.
    secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Publish,
    Unpublish,
    /// Something other than publishing (MediaMTX asks about readers too): allowed.
    Other,
}

impl HookPayload {
    fn event(&self, from_path: Event) -> Event {
        match self.action.as_deref() {
            Some("on_publish" | "publish" | "liveStreamStarted") => Event::Publish,
            Some("on_unpublish" | "unpublish" | "liveStreamEnded") => Event::Unpublish,
            Some(_) if from_path == Event::Publish => Event::Other,
            _ => from_path,
        }
    }

    fn stream_key(&self) -> Option<&str> {
        let from_path = self
            .path
            .as_deref()
            .map(|p| p.rsplit('/').next().unwrap_or(p));
        [
            self.stream.as_deref(),
            from_path,
            self.stream_id.as_deref(),
            self.id.as_deref(),
            self.name.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(stream_key_of)
        .find(|k| !k.is_empty())
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct HookQuery {
    secret: Option<String>,
}

/// SRS reads `code` (0 = allowed); the others only look at the HTTP status.
#[derive(Serialize, ToSchema)]
pub struct HookAccepted {
    code: u8,
    stream_id: Option<Uuid>,
}

/// An external server keeps one publisher per key, so its session id is derived from the
/// key: publish and unpublish callbacks for the same key address the same publisher.
fn session_for(stream_key: &str) -> Uuid {
    let digest = Sha256::digest(format!("onair/hook-session/{stream_key}").as_bytes());
    Uuid::from_slice(&digest[..16]).expect("16 bytes")
}

/// Publish/unpublish callback of an external media server.
#[utoipa::path(post, path = "/api/hooks/media/{event}", tag = "media",
    params(("event" = String, Path, description = "`publish` or `unpublish`"),
        ("secret" = Option<String>, Query, description = "The shared hook secret (or header `x-onair-hook-secret`)")),
    request_body(description = "JSON or form fields as SRS, MediaMTX or Ant Media send them",
        content((HookPayload = "application/json"), (HookPayload = "application/x-www-form-urlencoded"))),
    responses((status = 200, body = HookAccepted), (status = 401, description = "`invalid_hook_secret`", body = ErrorBody),
        (status = 403, description = "`publish_refused`, or `account_suspended`", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn media_hook(
    State(media): State<Arc<Media>>,
    Path(event): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let Some(expected) = media.hook_secret.as_deref() else {
        return Err(ApiError::NotFound(
            "media hooks are not enabled on this server",
        ));
    };
    let from_path = match event.as_str() {
        "publish" => Event::Publish,
        "unpublish" => Event::Unpublish,
        _ => return Err(ApiError::RouteNotFound),
    };
    let header_secret = request
        .headers()
        .get("x-onair-hook-secret")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let query_secret = axum::extract::Query::<HookQuery>::try_from_uri(request.uri())
        .map(|q| q.0.secret)
        .unwrap_or_default();
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes()
                .starts_with(b"application/x-www-form-urlencoded")
        });
    let payload = if is_form {
        axum::Form::<HookPayload>::from_request(request, &())
            .await
            .map_err(|e| ApiError::InvalidBody(e.body_text()))?
            .0
    } else {
        Json::<HookPayload>::from_request(request, &()).await?.0
    };
    let presented = header_secret
        .or(query_secret)
        .or_else(|| payload.secret.clone())
        .unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(ApiError::InvalidHookSecret);
    }

    let event = payload.event(from_path);
    if event == Event::Other {
        return Ok(Json(HookAccepted {
            code: 0,
            stream_id: None,
        })
        .into_response());
    }
    let key = payload.stream_key().ok_or_else(|| {
        ApiError::Validation(onair_core::ValidationError::new(
            "stream",
            "no stream key in the callback",
        ))
    })?;
    let session = session_for(key);
    let stream_id = match event {
        Event::Publish => match media.broadcasts.attach(key, session, false).await {
            Ok(publication) => Some(publication.stream_id),
            Err(PublishRefused::Unavailable) => return Err(ApiError::Unavailable),
            Err(PublishRefused::AccountSuspended) => return Err(ApiError::AccountSuspended),
            Err(refused) => {
                tracing::warn!(reason = refused.reason(), "external publish refused");
                return Err(ApiError::PublishRefused(refused));
            }
        },
        _ => {
            // The key's owner is only claimed: an unknown session detaches nothing.
            if let Some(user_id) = StreamKeys::claimed_user(key) {
                media
                    .broadcasts
                    .detach(user_id, session, PublishEnd::PublisherLeft)
                    .await;
            }
            None
        }
    };
    Ok(Json(HookAccepted { code: 0, stream_id }).into_response())
}
