//! Moderation like Twitch's: the channel owner appoints moderators; owner and moderators
//! delete messages, time users out, ban and unban, and set slow mode and followers-only.
//! Every action is stored, written to the owner's moderation log, and broadcast to the
//! room so it applies to every socket of the target at once. The same operations back
//! the REST endpoints and the moderators' WebSocket frames.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use onair_core::ValidationError;
use onair_store::{ChatSettings, ModerationEntry, NewBan, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::protocol::ServerFrame;
use super::rooms::RoomEvent;
use super::service::{Chat, MAX_SLOW_MODE};
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::identity::AuthUser;
use crate::pagination::{PageBody, PageQuery};

/// Longest timeout: 14 days.
const MAX_TIMEOUT_SECS: u32 = 14 * 24 * 3600;

#[derive(Debug, Clone)]
pub enum Action {
    Delete {
        message_id: Uuid,
    },
    Timeout {
        user_id: Uuid,
        seconds: u32,
    },
    Ban {
        user_id: Uuid,
        reason: Option<String>,
    },
    Unban {
        user_id: Uuid,
    },
    Settings(ChatSettings),
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Self::Delete { .. } => "delete",
            Self::Timeout { .. } => "timeout",
            Self::Ban { .. } => "ban",
            Self::Unban { .. } => "unban",
            Self::Settings(_) => "settings",
        }
    }

    fn target(&self) -> Option<Uuid> {
        match self {
            Self::Timeout { user_id, .. } | Self::Ban { user_id, .. } | Self::Unban { user_id } => {
                Some(*user_id)
            }
            Self::Delete { .. } | Self::Settings(_) => None,
        }
    }
}

impl Chat {
    /// Whether `actor` may moderate `channel`: its owner or one of its moderators.
    pub(super) async fn ensure_moderator(
        &self,
        channel: Uuid,
        actor: Uuid,
    ) -> Result<bool, ApiError> {
        if actor == channel {
            return Ok(true);
        }
        if self.store.chat_standing(channel, actor).await?.is_moderator {
            return Ok(false);
        }
        Err(ApiError::Forbidden(
            "only the channel's owner and moderators can do this",
        ))
    }

    /// Checks, stores, logs and broadcasts one moderator action.
    pub(super) async fn moderate(
        &self,
        channel: Uuid,
        actor: Uuid,
        action: Action,
    ) -> Result<(), ApiError> {
        let actor_is_owner = self.ensure_moderator(channel, actor).await?;
        if let Some(target) = action.target() {
            if target == channel {
                return Err(ApiError::Forbidden(
                    "the channel's owner cannot be moderated",
                ));
            }
            if !actor_is_owner
                && self
                    .store
                    .chat_standing(channel, target)
                    .await?
                    .is_moderator
            {
                return Err(ApiError::Forbidden(
                    "only the channel's owner can moderate a moderator",
                ));
            }
        }
        let chat = self;
        let mut details = None;
        match &action {
            Action::Delete { message_id } => {
                chat.forget(channel, *message_id).await;
                let frame = ServerFrame::MessageDeleted { id: *message_id }.encode();
                chat.publish(channel, RoomEvent::Frame(frame), None, None)
                    .await?;
            }
            Action::Timeout { user_id, seconds } => {
                if !(1..=MAX_TIMEOUT_SECS).contains(seconds) {
                    return Err(ValidationError::new(
                        "seconds",
                        format!("must be 1 to {MAX_TIMEOUT_SECS}"),
                    )
                    .into());
                }
                let until: DateTime<Utc> =
                    Utc::now() + chrono::Duration::seconds(i64::from(*seconds));
                self.store
                    .put_ban(NewBan {
                        channel_id: channel,
                        user_id: *user_id,
                        expires_at: Some(until.into()),
                        reason: None,
                        created_by: actor,
                    })
                    .await?;
                details = Some(format!("{seconds} s"));
                let frame = ServerFrame::UserTimedOut {
                    user_id: *user_id,
                    until,
                }
                .encode();
                chat.publish(
                    channel,
                    RoomEvent::Restrict {
                        user: *user_id,
                        until: Some(until),
                        frame,
                    },
                    None,
                    None,
                )
                .await?;
            }
            Action::Ban { user_id, reason } => {
                self.store
                    .put_ban(NewBan {
                        channel_id: channel,
                        user_id: *user_id,
                        expires_at: None,
                        reason: reason.clone(),
                        created_by: actor,
                    })
                    .await?;
                details.clone_from(reason);
                let frame = ServerFrame::UserBanned { user_id: *user_id }.encode();
                chat.publish(
                    channel,
                    RoomEvent::Restrict {
                        user: *user_id,
                        until: None,
                        frame,
                    },
                    None,
                    None,
                )
                .await?;
            }
            Action::Unban { user_id } => {
                self.store.lift_ban(channel, *user_id).await?;
                let frame = ServerFrame::UserUnbanned { user_id: *user_id }.encode();
                chat.publish(
                    channel,
                    RoomEvent::Unrestrict {
                        user: *user_id,
                        frame,
                    },
                    None,
                    None,
                )
                .await?;
            }
            Action::Settings(settings) => {
                if !(0..=MAX_SLOW_MODE.as_secs() as i32).contains(&settings.slow_mode_secs)
                    || settings
                        .followers_only_minutes
                        .is_some_and(|m| !(0..=129_600).contains(&m))
                {
                    return Err(ValidationError::new(
                        "settings",
                        "slow mode 0–86400 s; followers-only 0–129600 minutes",
                    )
                    .into());
                }
                self.store.put_chat_settings(channel, *settings).await?;
                let followers_only = match settings.followers_only_minutes {
                    Some(minutes) => format!("followers-only {minutes} min"),
                    None => "followers-only off".to_owned(),
                };
                details = Some(format!(
                    "slow {} s, {followers_only}",
                    settings.slow_mode_secs
                ));
                let frame = ServerFrame::Settings {
                    slow_mode_secs: settings.slow_mode_secs,
                    followers_only_minutes: settings.followers_only_minutes,
                }
                .encode();
                chat.publish(
                    channel,
                    RoomEvent::Settings {
                        settings: *settings,
                        frame,
                    },
                    None,
                    None,
                )
                .await?;
            }
        }
        let message_id = match action {
            Action::Delete { message_id } => Some(message_id),
            _ => None,
        };
        self.store
            .log_moderation(&ModerationEntry {
                id: Uuid::now_v7(),
                channel_id: channel,
                moderator_id: actor,
                action: action.name().to_owned(),
                target_user_id: action.target(),
                message_id,
                details,
                created_at: Timestamp::now(),
            })
            .await?;
        metrics::counter!("chat_moderation_actions_total", "action" => action.name()).increment(1);
        Ok(())
    }
}

type Ids = Path<(Uuid, Uuid)>;

/// Appoint a moderator (channel owner only). Idempotent.
#[utoipa::path(put, path = "/channels/{id}/moderators/{user_id}", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Moderator"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn add_moderator(
    State(chat): State<Arc<Chat>>,
    AuthUser(me): AuthUser,
    Path((channel, user)): Ids,
) -> Result<StatusCode, ApiError> {
    set_moderator(&chat, me, channel, user, true).await
}

/// Remove a moderator (channel owner only). Idempotent.
#[utoipa::path(delete, path = "/channels/{id}/moderators/{user_id}", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Not a moderator"), (status = 403, body = ErrorBody)))]
pub(super) async fn remove_moderator(
    State(chat): State<Arc<Chat>>,
    AuthUser(me): AuthUser,
    Path((channel, user)): Ids,
) -> Result<StatusCode, ApiError> {
    set_moderator(&chat, me, channel, user, false).await
}

async fn set_moderator(
    chat: &Chat,
    me: Uuid,
    channel: Uuid,
    user: Uuid,
    on: bool,
) -> Result<StatusCode, ApiError> {
    if me != channel {
        return Err(ApiError::Forbidden(
            "only the channel's owner appoints moderators",
        ));
    }
    if user == channel {
        return Err(ApiError::Forbidden(
            "the owner is not a moderator of their own channel",
        ));
    }
    match chat.store.set_moderator(channel, user, on).await {
        Err(onair_store::StoreError::NotFound) => return Err(ApiError::NotFound("user")),
        other => other?,
    };
    chat.store
        .log_moderation(&ModerationEntry {
            id: Uuid::now_v7(),
            channel_id: channel,
            moderator_id: me,
            action: if on {
                "add_moderator"
            } else {
                "remove_moderator"
            }
            .into(),
            target_user_id: Some(user),
            message_id: None,
            details: None,
            created_at: Timestamp::now(),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    user_id: Uuid,
    /// Seconds (1 to 1 209 600) for a timeout; absent for a ban until lifted.
    #[schema(minimum = 1, maximum = 1_209_600)]
    duration_secs: Option<u32>,
    reason: Option<String>,
}

/// Ban or time out a user in this channel's chat (owner and moderators).
#[utoipa::path(post, path = "/channels/{id}/bans", tag = "chat", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = BanRequest,
    responses((status = 204, description = "Applied on every node at once"), (status = 403, body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn ban_user(
    State(chat): State<Arc<Chat>>,
    AuthUser(me): AuthUser,
    Path(channel): Path<Uuid>,
    Json(request): Json<BanRequest>,
) -> Result<StatusCode, ApiError> {
    let action = match request.duration_secs {
        Some(seconds) => Action::Timeout {
            user_id: request.user_id,
            seconds,
        },
        None => Action::Ban {
            user_id: request.user_id,
            reason: request.reason,
        },
    };
    chat.moderate(channel, me, action).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lift a ban or timeout.
#[utoipa::path(delete, path = "/channels/{id}/bans/{user_id}", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Lifted"), (status = 403, body = ErrorBody)))]
pub(super) async fn unban_user(
    State(chat): State<Arc<Chat>>,
    AuthUser(me): AuthUser,
    Path((channel, user_id)): Ids,
) -> Result<StatusCode, ApiError> {
    chat.moderate(channel, me, Action::Unban { user_id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a chat message for everyone.
#[utoipa::path(delete, path = "/channels/{id}/chat/messages/{message_id}", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody)))]
pub(super) async fn delete_message(
    State(chat): State<Arc<Chat>>,
    AuthUser(me): AuthUser,
    Path((channel, message_id)): Ids,
) -> Result<StatusCode, ApiError> {
    chat.moderate(channel, me, Action::Delete { message_id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatSettingsDto {
    /// Minimum seconds between two messages of a user; 0 turns slow mode off.
    #[schema(minimum = 0, maximum = 86_400)]
    slow_mode_secs: i32,
    /// Only followers of at least this many minutes may talk; null turns it off.
    #[schema(minimum = 0, maximum = 129_600)]
    followers_only_minutes: Option<i32>,
}

/// The channel's chat modes.
#[utoipa::path(get, path = "/channels/{id}/chat/settings", tag = "chat", params(("id" = Uuid, Path)),
    responses((status = 200, body = ChatSettingsDto)))]
pub(super) async fn get_settings(
    State(chat): State<Arc<Chat>>,
    Path(channel): Path<Uuid>,
) -> Result<Json<ChatSettingsDto>, ApiError> {
    let settings = chat.store.chat_settings(channel).await?;
    Ok(Json(ChatSettingsDto {
        slow_mode_secs: settings.slow_mode_secs,
        followers_only_minutes: settings.followers_only_minutes,
    }))
}

/// Set slow mode and followers-only (owner and moderators).
#[utoipa::path(put, path = "/channels/{id}/chat/settings", tag = "chat", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ChatSettingsDto,
    responses((status = 204, description = "Applied"), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn update_settings(
    State(chat): State<Arc<Chat>>,
    AuthUser(me): AuthUser,
    Path(channel): Path<Uuid>,
    Json(request): Json<ChatSettingsDto>,
) -> Result<StatusCode, ApiError> {
    let settings = ChatSettings {
        slow_mode_secs: request.slow_mode_secs,
        followers_only_minutes: request.followers_only_minutes,
    };
    chat.moderate(channel, me, Action::Settings(settings))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModerationEntryDto {
    id: Uuid,
    moderator_id: Uuid,
    action: String,
    target_user_id: Option<Uuid>,
    message_id: Option<Uuid>,
    details: Option<String>,
    created_at: DateTime<Utc>,
}

/// What moderators did in this channel, newest first (channel owner only).
#[utoipa::path(get, path = "/channels/{id}/moderation-log", tag = "chat", security(("bearer" = [])), params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<ModerationEntryDto>), (status = 403, body = ErrorBody)))]
pub(super) async fn moderation_log(
    State(chat): State<Arc<Chat>>,
    AuthUser(me): AuthUser,
    Path(channel): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<ModerationEntryDto>>, ApiError> {
    if me != channel {
        return Err(ApiError::Forbidden(
            "only the channel's owner reads its moderation log",
        ));
    }
    let (limit, cursor) = chat.cursors.parse(query.limit, query.cursor.as_deref())?;
    let page = chat.store.moderation_log(channel, limit, cursor).await?;
    Ok(Json(PageBody::from_page(&chat.cursors, page, |e| {
        ModerationEntryDto {
            id: e.id,
            moderator_id: e.moderator_id,
            action: e.action,
            target_user_id: e.target_user_id,
            message_id: e.message_id,
            details: e.details,
            created_at: e.created_at.get(),
        }
    })))
}
