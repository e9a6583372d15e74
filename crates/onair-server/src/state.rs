use std::sync::Arc;
use std::time::Duration;

use onair_store::Store;

use crate::auth::AccessTokens;
use crate::media::Broadcasts;
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
    /// Where ingest writes HLS (`<root>/live/<stream id>/`).
    pub media_root: Arc<std::path::Path>,
    pub broadcasts: Arc<Broadcasts>,
    pub viewers: Arc<Viewers>,
    /// Shared secret of external media servers' callbacks; hooks are off without it.
    pub media_hook_secret: Option<Arc<str>>,
}
