//! Go-live notifications (review C1). Going live enqueues one job in the same
//! transaction; a worker fans it out to the followers' inboxes in set-based batches
//! (`INSERT … SELECT` from follows, a keyset range at a time), paced by a rate limit,
//! announcing each batch to connected users and queueing Web Push for subscribers.
//! The request that went live never waits for any of it.

mod global_ip;
mod inbox;
mod outbound;
mod push;
mod push_api;
mod realtime;
mod service;
mod webhook_api;
mod webhooks;

use std::sync::Arc;

use axum::extract::FromRef;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use self::service::{Notifications, NotificationsError, NotifyConfig, NotifyStores};
use crate::identity::AccessTokens;

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Notifications>: FromRef<S>,
    Arc<AccessTokens>: FromRef<S>,
{
    use self::{inbox::*, push_api::*, webhook_api::*};
    OpenApiRouter::new()
        .routes(routes!(inbox))
        .routes(routes!(unread_count))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
        .routes(routes!(live_feed))
        .routes(routes!(get_settings, update_settings))
        .routes(routes!(is_muted, mute, unmute))
        .routes(routes!(vapid_public_key))
        .routes(routes!(subscribe, unsubscribe))
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(delete_webhook))
}
