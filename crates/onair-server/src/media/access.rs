//! Who may read a broadcast's or an archive's media. A live broadcast and a public or
//! unlisted archive are open to anyone with the URL. A private archive's media — its
//! VOD and, until processing removes it, its recording as streamed under
//! `live/<stream_id>/` — is served only with a capability token, which the API puts in
//! the archive's URLs for its owner. The token rides in the query string (`?token=`), and
//! a player resolves a playlist's relative URIs without it, so the playlists served to a
//! token holder carry it on every URI.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use moka::future::Cache;
use onair_core::StreamStatus;
use onair_store::{Archive, ArchiveStore, ArchiveVisibility, StoreError, StreamStore};
use serde::Deserialize;
use sha2::Sha256;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::ApiError;
use crate::secrets::derive_key;

/// How long a token handed out with an archive plays: a long VOD watched with pauses.
const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Expiries are rounded up to this, so URLs handed out within it are the same (and the
/// browser's cache keeps serving them).
const EXPIRY_STEP_SECS: u64 = 3600;
/// Bytes of HMAC-SHA-256 kept in a token: 128 bits cannot be guessed.
const SIGNATURE_BYTES: usize = 16;
/// How long a node trusts what it read about a broadcast or archive: every segment
/// request asks, and visibility rarely changes (the node that changes it forgets at
/// once; the others within this).
const POLICY_TTL: Duration = Duration::from_secs(5);
const POLICY_CAPACITY: u64 = 100_000;

/// Media access decisions and the tokens that open private archives.
pub(crate) struct MediaAccess {
    archives: Arc<dyn ArchiveStore>,
    streams: Arc<dyn StreamStore>,
    tokens: Tokens,
    policies: Cache<Subject, Policy>,
}

/// Signs and checks tokens with a key of their own.
struct Tokens {
    key: [u8; 32],
}

/// Media is requested by broadcast (`/live/<stream_id>/…`) or by archive
/// (`/vod/<archive_id>/…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Subject {
    Broadcast(Uuid),
    Archive(Uuid),
}

#[derive(Debug, Clone, Copy)]
enum Policy {
    Open,
    /// Only with a token of this archive.
    Private(Uuid),
    /// The archive was deleted, or an ended broadcast has none.
    Gone,
}

/// The query string of a media request.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct MediaQuery {
    /// Opens a private archive's media: it comes with the archive's URLs for its owner.
    pub(super) token: Option<String>,
}

/// What a request was allowed, and so how it is answered.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Grant {
    Public,
    /// Through this token of a private archive.
    Private(String),
}

impl MediaAccess {
    pub(crate) fn new(
        archives: Arc<dyn ArchiveStore>,
        streams: Arc<dyn StreamStore>,
        root_secret: &[u8],
    ) -> Self {
        Self {
            archives,
            streams,
            tokens: Tokens {
                key: derive_key(root_secret, "onair/media-token"),
            },
            policies: Cache::builder()
                .max_capacity(POLICY_CAPACITY)
                .time_to_live(POLICY_TTL)
                .build(),
        }
    }

    /// `path` (a URL path of `archive`'s media) as its viewer may fetch it: with a token
    /// when the archive is private.
    pub(crate) fn url(&self, archive: &Archive, path: &str) -> String {
        match archive.visibility {
            ArchiveVisibility::Private => {
                let token = self.tokens.issue(archive.id, unix_now());
                format!("{path}?token={token}")
            }
            ArchiveVisibility::Public | ArchiveVisibility::Unlisted => path.to_owned(),
        }
    }

    /// `archive` changed visibility or was deleted: this node stops trusting what it read.
    pub(crate) async fn forget(&self, archive: &Archive) {
        self.policies
            .invalidate(&Subject::Broadcast(archive.stream_id))
            .await;
        self.policies
            .invalidate(&Subject::Archive(archive.id))
            .await;
    }

    /// Broadcast `stream_id`'s media, asked for with `token`. 404 when it is a private
    /// archive's and the token does not open it.
    pub(super) async fn broadcast(
        &self,
        stream_id: Uuid,
        token: Option<&str>,
    ) -> Result<Grant, ApiError> {
        self.grant(Subject::Broadcast(stream_id), token).await
    }

    /// Archive `archive_id`'s VOD: 404 once deleted, or when private and the token does
    /// not open it.
    pub(super) async fn archive(
        &self,
        archive_id: Uuid,
        token: Option<&str>,
    ) -> Result<Grant, ApiError> {
        self.grant(Subject::Archive(archive_id), token).await
    }

    async fn grant(&self, subject: Subject, token: Option<&str>) -> Result<Grant, ApiError> {
        let policy = self
            .policies
            .try_get_with(subject, self.policy(subject))
            .await
            .map_err(|e: Arc<StoreError>| {
                tracing::warn!(error = %e, "media access check failed");
                ApiError::Unavailable
            })?;
        let hidden = ApiError::NotFound("media file");
        match policy {
            Policy::Open => Ok(Grant::Public),
            Policy::Gone => Err(hidden),
            Policy::Private(archive_id) => match token {
                Some(token) if self.tokens.verify(archive_id, token, unix_now()) => {
                    Ok(Grant::Private(token.to_owned()))
                }
                _ => Err(hidden),
            },
        }
    }

    async fn policy(&self, subject: Subject) -> Result<Policy, StoreError> {
        let archive = match subject {
            Subject::Broadcast(stream_id) => self.archives.stream_archive(stream_id).await?,
            Subject::Archive(id) => self.archives.archive(id).await?,
        };
        Ok(match (archive, subject) {
            (Some(a), _) if a.visibility == ArchiveVisibility::Private => Policy::Private(a.id),
            (Some(_), _) => Policy::Open,
            // A broadcast on the air, or offline awaiting its publisher's return.
            (None, Subject::Broadcast(stream_id)) => match self.streams.stream(stream_id).await? {
                Some(stream) if stream.status != StreamStatus::Ended => Policy::Open,
                _ => Policy::Gone,
            },
            (None, Subject::Archive(_)) => Policy::Gone,
        })
    }
}

impl Tokens {
    /// `<expiry>.<signature>`: the expiry in Unix seconds, signed with the archive's id.
    fn issue(&self, archive_id: Uuid, now: u64) -> String {
        let lifetime = TOKEN_LIFETIME.as_secs();
        let expiry = (now + lifetime).div_ceil(EXPIRY_STEP_SECS) * EXPIRY_STEP_SECS;
        let signature = self.mac(archive_id, expiry).finalize().into_bytes();
        let signature = URL_SAFE_NO_PAD.encode(&signature[..SIGNATURE_BYTES]);
        format!("{expiry}.{signature}")
    }

    /// Whether `token` opens archive `archive_id` at `now` (compared in constant time).
    fn verify(&self, archive_id: Uuid, token: &str, now: u64) -> bool {
        let Some((expiry, signature)) = token.split_once('.') else {
            return false;
        };
        let (Ok(expiry), Ok(signature)) =
            (expiry.parse::<u64>(), URL_SAFE_NO_PAD.decode(signature))
        else {
            return false;
        };
        signature.len() == SIGNATURE_BYTES
            && expiry > now
            && self
                .mac(archive_id, expiry)
                .verify_truncated_left(&signature)
                .is_ok()
    }

    fn mac(&self, archive_id: Uuid, expiry: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(archive_id.as_bytes());
        mac.update(&expiry.to_be_bytes());
        mac
    }
}

impl Grant {
    /// The response's `Cache-Control`: `public` as given, or kept out of shared caches.
    pub(super) fn cache_control(&self, public: &'static str) -> &'static str {
        match self {
            Self::Public => public,
            Self::Private(_) => "private, max-age=3600",
        }
    }

    /// A playlist as this grant's holder is served it: with the token on every URI.
    pub(super) fn playlist(&self, playlist: Bytes) -> Bytes {
        match self {
            Self::Public => playlist,
            Self::Private(token) => with_token(&playlist, token),
        }
    }
}

/// Adds `token` to each URI of `playlist`: the URI lines and the `URI="…"` attributes
/// (`#EXT-X-MAP`, `#EXT-X-MEDIA`, `#EXT-X-I-FRAME-STREAM-INF`).
fn with_token(playlist: &[u8], token: &str) -> Bytes {
    let add = |uri: &str| {
        let separator = if uri.contains('?') { '&' } else { '?' };
        format!("{uri}{separator}token={token}")
    };
    let text = String::from_utf8_lossy(playlist);
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        let attribute = line
            .split_once("URI=\"")
            .and_then(|(head, rest)| Some((head, rest.split_once('"')?)));
        match attribute {
            _ if line.trim().is_empty() => out.push_str(line),
            Some((head, (uri, tail))) if line.starts_with('#') => {
                out.push_str(&format!("{head}URI=\"{}\"{tail}", add(uri)));
            }
            _ if line.starts_with('#') => out.push_str(line),
            _ => out.push_str(&add(line.trim())),
        }
        out.push('\n');
    }
    Bytes::from(out)
}

fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_archive_until_it_expires() {
        let access = Tokens { key: [7; 32] };
        let (archive, other) = (Uuid::now_v7(), Uuid::now_v7());
        let now = 1_800_000_000;
        let token = access.issue(archive, now);
        assert!(access.verify(archive, &token, now));
        assert!(!access.verify(other, &token, now), "another archive");
        let expiry: u64 = token.split('.').next().unwrap().parse().unwrap();
        assert!(expiry >= now + TOKEN_LIFETIME.as_secs());
        assert!(expiry < now + TOKEN_LIFETIME.as_secs() + EXPIRY_STEP_SECS);
        assert!(!access.verify(archive, &token, expiry), "expired");
        let signature = token.split('.').nth(1).unwrap();
        let extended = format!("{}.{signature}", expiry + EXPIRY_STEP_SECS);
        assert!(!access.verify(archive, &extended, now), "expiry is signed");
        for garbage in [
            "",
            ".",
            "1.",
            "x.y",
            "99999999999.AAAA",
            &token[..token.len() - 1],
        ] {
            assert!(!access.verify(archive, garbage, now), "{garbage:?}");
        }
    }

    #[test]
    fn every_uri_of_a_playlist_carries_the_token() {
        let playlist = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"1@0\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1\nsource/index.m3u8\n\n#EXTINF:2.0,\nseg_1.ts?x=1\n";
        let served = with_token(playlist.as_bytes(), "9.abc");
        assert_eq!(
            std::str::from_utf8(&served).unwrap(),
            "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4?token=9.abc\",BYTERANGE=\"1@0\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1\nsource/index.m3u8?token=9.abc\n\n\
             #EXTINF:2.0,\nseg_1.ts?x=1&token=9.abc\n"
        );
    }
}
