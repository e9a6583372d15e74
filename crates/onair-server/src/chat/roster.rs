//! Who moderates a channel and who may not talk in it: the lists behind the creator's
//! moderation tools, readable by the channel's owner and moderators.

use std::sync::Arc;

use axum::extract::State;
use chrono::{DateTime, Utc};
use onair_store::{ActiveBan, Moderator};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::service::Chat;
use crate::dto::UserSummaryDto;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::identity::AuthUser;
use crate::pagination::{PageBody, PageQuery};

impl Chat {
    /// 404 for an unknown channel, then 403 unless `reader` is its owner or a moderator.
    async fn ensure_may_read_roster(&self, channel: Uuid, reader: Uuid) -> Result<(), ApiError> {
        self.channel_exists(channel).await?;
        self.ensure_moderator(channel, reader).await.map(drop)
    }
}

/// The channel's moderators, latest appointed first (owner and moderators).
#[utoipa::path(get, path = "/channels/{id}/moderators", tag = "chat", security(("bearer" = [])), params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<UserSummaryDto>),
        (status = 403, description = "`forbidden`: not the channel's owner or a moderator", body = ErrorBody),
        (status = 404, description = "`not_found`: no such channel", body = ErrorBody)))]
pub(super) async fn moderators(
    State(chat): State<Arc<Chat>>,
    AuthUser(me): AuthUser,
    Path(channel): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<UserSummaryDto>>, ApiError> {
    chat.ensure_may_read_roster(channel, me).await?;
    let store = &chat.store;
    let fetch = async |limit, cursor| store.moderators(channel, limit, cursor).await;
    let to_dto = |moderator: Moderator| UserSummaryDto::from(moderator.user);
    chat.cursors.page(&query, fetch, to_dto).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BanDto {
    user: UserSummaryDto,
    /// When a timeout ends; null for a ban, which lasts until lifted.
    until: Option<DateTime<Utc>>,
    reason: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<ActiveBan> for BanDto {
    fn from(ban: ActiveBan) -> Self {
        Self {
            user: ban.user.into(),
            until: ban.expires_at.map(|at| at.get()),
            reason: ban.reason,
            created_at: ban.created_at.get(),
        }
    }
}

/// Who may not talk in this channel now: bans and running timeouts, latest first (owner
/// and moderators).
#[utoipa::path(get, path = "/channels/{id}/bans", tag = "chat", security(("bearer" = [])), params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageBody<BanDto>),
        (status = 403, description = "`forbidden`: not the channel's owner or a moderator", body = ErrorBody),
        (status = 404, description = "`not_found`: no such channel", body = ErrorBody)))]
pub(super) async fn bans(
    State(chat): State<Arc<Chat>>,
    AuthUser(me): AuthUser,
    Path(channel): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PageBody<BanDto>>, ApiError> {
    chat.ensure_may_read_roster(channel, me).await?;
    let store = &chat.store;
    let fetch = async |limit, cursor| store.active_bans(channel, limit, cursor).await;
    chat.cursors.page(&query, fetch, BanDto::from).await
}
