use std::sync::Arc;
use std::time::Duration;

use onair_store::Store;

use crate::auth::AccessTokens;
use crate::chat::Chat;
use crate::media::Broadcasts;
use crate::notifications::Notifications;
use crate::pagination::Cursors;
use crate::streams::StreamKeys;
use crate::viewers::Viewers;

/// What every handler can reach. Cheap to clone: everything heavy is shared.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub access_tokens: Arc<AccessTokens>,
    pub stream_keys: Arc<StreamKeys>,
    pub refresh_token_ttl: Duration,
    pub public_rtmp_url: Arc<str>,
    /// Where live HLS is served from.
    pub media: onair_infra::MediaStore,
    pub broadcasts: Arc<Broadcasts>,
    pub viewers: Arc<Viewers>,
    pub chat: Arc<Chat>,
    pub notifications: Arc<Notifications>,
    pub cursors: Arc<Cursors>,
    /// Shared secret of external media servers' callbacks; hooks are off without it.
    pub media_hook_secret: Option<Arc<str>>,
}
