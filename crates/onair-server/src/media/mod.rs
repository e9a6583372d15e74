//! The application side of the media plane: authenticating publishers by stream key,
//! moving broadcasts through their lifecycle (live → offline within the reconnect window
//! → ended), callbacks from external media servers, and serving the HLS ingest writes
//! and the archives' VODs (a private archive's with a token only).

mod access;
mod hls;
mod hooks;
mod lowlatency;
mod vod;

pub(crate) use access::MediaAccess;

/// Reading a stored media file and answering with it, for the other domains that serve media.
pub(crate) use hls::{IMMUTABLE, JPEG, PLAYLIST, SEGMENT, fetch, object_key, respond};
pub(crate) use vod::VOD_PLAYLIST_CACHE;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::FromRef;
use onair_infra::{BreakerSettings, MediaStore, S3Limits, S3Options};
use onair_media::{
    IngestConfig, Publication, PublishEnd, PublishHandler, PublishRefused, SrtConfig,
    TranscodeSettings,
};
use onair_store::{Conflict, StoreError, StreamKeyStore, StreamStore, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::caches::Caches;
use crate::shutdown::signalled;
use crate::streams::StreamKeys;

/// The `[media]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Where HLS and avatars are stored: `s3://bucket/prefix` (credentials from `AWS_*`),
    /// `file:///dir`; default the media directory under `data_dir`.
    pub object_store_url: Option<String>,
    /// S3 settings given here override the standard `AWS_*` variables: an S3-compatible
    /// endpoint (MinIO, R2), its region, keys, and plain HTTP to it.
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    pub s3_allow_http: Option<bool>,
    /// Deadline of each request to S3, and of its connection.
    pub s3_timeout_ms: u64,
    pub s3_connect_timeout_ms: u64,
    /// Retries of a failed S3 request, all within `s3_retry_timeout_ms` of the first try.
    pub s3_max_retries: usize,
    pub s3_retry_timeout_ms: u64,
    /// Ingest URL shown to creators next to their stream key.
    pub public_rtmp_url: String,
    /// Built-in RTMP ingest; off when an external media server calls the hooks instead.
    pub rtmp_enabled: bool,
    pub rtmp_bind: SocketAddr,
    /// SRT ingest URL shown to creators (their stream key goes in the `streamid`).
    pub public_srt_url: String,
    /// Built-in SRT ingest (UDP), beside RTMP.
    pub srt_enabled: bool,
    pub srt_bind: SocketAddr,
    /// When set, SRT publishers must encrypt with this passphrase (10 to 79 bytes).
    pub srt_passphrase: Option<String>,
    /// SRT receive latency offered, in milliseconds: time to recover lost packets.
    pub srt_latency_ms: u64,
    /// Concurrent ingests this node accepts over RTMP and SRT (each runs an ffmpeg).
    /// Default: one per core — a 1080p source with the default ladder takes about 0.7 of
    /// a core to transcode (`bench -- media`), which leaves room for the rest of the node.
    pub max_ingests: usize,
    /// How long a broadcast waits for its publisher to reconnect before it ends.
    pub reconnect_grace_secs: u64,
    /// How long a broadcast of the built-in ingest stays live without its ingest node
    /// renewing it (every 3 s while the publish runs): a node that dies takes at most
    /// this to show its broadcasts offline.
    pub ingest_lease_secs: u64,
    pub ffmpeg_path: PathBuf,
    /// Encoder threads per ingest.
    pub ffmpeg_threads: u32,
    /// Target HLS segment length.
    pub hls_segment_secs: u32,
    /// Target LL-HLS part length.
    pub hls_part_ms: u32,
    /// Heights of the live renditions encoded below the source (never above it); the
    /// source itself is always copied.
    pub ladder: Vec<u32>,
    /// Enables `/api/hooks/media/*` for SRS, MediaMTX or Ant Media (at least 16 bytes).
    pub hook_secret: Option<String>,
    /// Bytes of archives and clips a creator may store; past it, broadcasts are not
    /// recorded (the creator sees why). None: no limit.
    pub storage_quota_bytes: Option<u64>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            object_store_url: None,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_allow_http: None,
            s3_timeout_ms: 10_000,
            s3_connect_timeout_ms: 3_000,
            s3_max_retries: 3,
            s3_retry_timeout_ms: 15_000,
            public_rtmp_url: "rtmp://127.0.0.1:1935/live".into(),
            rtmp_enabled: true,
            rtmp_bind: SocketAddr::from(([127, 0, 0, 1], 1935)),
            public_srt_url: "srt://127.0.0.1:9000".into(),
            srt_enabled: true,
            srt_bind: SocketAddr::from(([127, 0, 0, 1], 9000)),
            srt_passphrase: None,
            srt_latency_ms: 120,
            max_ingests: std::thread::available_parallelism().map_or(2, usize::from),
            reconnect_grace_secs: 60,
            ingest_lease_secs: 15,
            ffmpeg_path: PathBuf::from("ffmpeg"),
            ffmpeg_threads: 2,
            hls_segment_secs: 1,
            hls_part_ms: TranscodeSettings::default().part_millis,
            ladder: TranscodeSettings::default().ladder,
            hook_secret: None,
            storage_quota_bytes: None,
        }
    }
}

impl MediaConfig {
    /// The S3 settings given in the configuration (the rest come from `AWS_*`), with
    /// the store's circuit breaker.
    pub fn s3(&self, breaker: BreakerSettings) -> S3Options {
        S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
            allow_http: self.s3_allow_http,
            limits: S3Limits {
                timeout: Duration::from_millis(self.s3_timeout_ms),
                connect_timeout: Duration::from_millis(self.s3_connect_timeout_ms),
                max_retries: self.s3_max_retries,
                retry_timeout: Duration::from_millis(self.s3_retry_timeout_ms),
                breaker,
            },
        }
    }

    /// The built-in ingest's settings; `media_root` is the local spool.
    pub fn ingest(&self, store: MediaStore, media_root: PathBuf) -> IngestConfig {
        IngestConfig {
            store,
            rtmp_bind: self.rtmp_bind,
            srt: self.srt_enabled.then(|| SrtConfig {
                bind: self.srt_bind,
                passphrase: self.srt_passphrase.clone(),
                latency: Duration::from_millis(self.srt_latency_ms),
            }),
            app: "live".into(),
            max_ingests: self.max_ingests,
            media_root,
            transcode: TranscodeSettings {
                ffmpeg: self.ffmpeg_path.clone(),
                threads: self.ffmpeg_threads,
                segment_seconds: self.hls_segment_secs,
                part_millis: self.hls_part_ms,
                ladder: self.ladder.clone(),
                ..TranscodeSettings::default()
            },
        }
    }
}

/// Publish authentication and broadcast lifecycle for the built-in ingest (and, through
/// the same store operations, for external media servers' callbacks).
pub struct Broadcasts {
    streams: Arc<dyn StreamStore>,
    keys: Arc<dyn StreamKeyStore>,
    /// Wakes this node's job runners: going live and ending queue notifications.
    jobs: Arc<Notify>,
    /// Storage past which a creator's broadcasts are not recorded.
    quota_bytes: Option<i64>,
    /// The live list and profiles show broadcasts.
    caches: Arc<Caches>,
    /// How long this node's publishes stay live without a renewal.
    lease: Duration,
}

impl Broadcasts {
    pub fn new(
        streams: Arc<dyn StreamStore>,
        keys: Arc<dyn StreamKeyStore>,
        jobs: Arc<Notify>,
        (quota_bytes, lease): (Option<u64>, Duration),
        caches: Arc<Caches>,
    ) -> Self {
        Self {
            streams,
            keys,
            jobs,
            quota_bytes: quota_bytes.map(|q| i64::try_from(q).unwrap_or(i64::MAX)),
            caches,
            lease,
        }
    }

    fn lease_until(&self) -> Timestamp {
        Timestamp::from(chrono::Utc::now() + self.lease)
    }

    /// Authenticates `stream_key` and attaches publisher `session_id` to its owner's
    /// broadcast (continuing one within the reconnect window, else starting one). A
    /// `leased` publish (this node's ingest) must be renewed to stay live.
    pub async fn attach(
        &self,
        stream_key: &str,
        session_id: Uuid,
        leased: bool,
    ) -> Result<Publication, PublishRefused> {
        let user_id = self.authenticate(stream_key).await?;
        match self
            .streams
            .attach_publisher(
                user_id,
                session_id,
                Uuid::now_v7(),
                self.quota_bytes,
                leased.then(|| self.lease_until()),
            )
            .await
        {
            Ok((stream, resumed)) => {
                self.jobs.notify_one();
                self.caches.channel_changed(user_id).await;
                Ok(Publication {
                    user_id,
                    stream_id: stream.id,
                    session_id,
                    resumed,
                    record: stream.recording,
                })
            }
            Err(StoreError::Conflict(Conflict::ActiveStream)) => {
                Err(PublishRefused::AlreadyPublishing)
            }
            Err(StoreError::NotFound) => Err(PublishRefused::InvalidKey),
            Err(StoreError::Suspended) => Err(PublishRefused::AccountSuspended),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The user whose current key `stream_key` is.
    async fn authenticate(&self, stream_key: &str) -> Result<Uuid, PublishRefused> {
        let user_id = StreamKeys::claimed_user(stream_key).ok_or(PublishRefused::InvalidKey)?;
        let record = self.keys.stream_key(user_id).await.map_err(unavailable)?;
        match record.is_some_and(|record| StreamKeys::verify(stream_key, &record)) {
            true => Ok(user_id),
            false => Err(PublishRefused::InvalidKey),
        }
    }

    /// `user_id`'s publisher `session_id` is gone. A publisher that left may reconnect
    /// within the window, so its broadcast goes offline; a media failure ends it.
    pub async fn detach(&self, user_id: Uuid, session_id: Uuid, end: PublishEnd) {
        let result = match end {
            PublishEnd::PublisherLeft => self.streams.detach_publisher(session_id).await,
            PublishEnd::TranscoderFailed => self.streams.end_published_stream(session_id).await,
            PublishEnd::Stopped => return,
        };
        self.jobs.notify_one();
        self.caches.channel_changed(user_id).await;
        if let Err(e) = result {
            // The abandoned-broadcast sweep ends it later if it stays without a publisher.
            tracing::error!(error = %e, %session_id, "could not record the end of a publish");
        }
    }
}

#[async_trait]
impl PublishHandler for Broadcasts {
    async fn key_valid(&self, stream_key: &str) -> Result<(), PublishRefused> {
        self.authenticate(stream_key).await.map(|_| ())
    }

    async fn publish_started(&self, stream_key: &str) -> Result<Publication, PublishRefused> {
        self.attach(stream_key, Uuid::now_v7(), true).await
    }

    async fn publish_ended(&self, publication: &Publication, end: PublishEnd) {
        self.detach(publication.user_id, publication.session_id, end)
            .await;
    }

    /// Also renews the publish's lease: only this publish can hold its live broadcast
    /// (a rotation or an end by hand detaches it, a lapsed lease took it offline).
    async fn still_live(&self, publication: &Publication) -> bool {
        let session = publication.session_id;
        match self
            .streams
            .renew_publisher_lease(session, self.lease_until())
            .await
        {
            Ok(live) => live,
            Err(e) => {
                // An outage is no reason to cut a broadcast.
                tracing::warn!(error = %e, "publish re-check failed");
                true
            }
        }
    }
}

/// A store failure during a publish check: the publisher may retry.
fn unavailable(e: StoreError) -> PublishRefused {
    tracing::warn!(error = %e, "publish check failed");
    PublishRefused::Unavailable
}

/// Ends broadcasts whose publisher did not return within `grace`, until `stop` turns
/// true. Running as a sweep rather than a timer per broadcast means a restart or a
/// crashed node loses nothing.
pub async fn end_abandoned_broadcasts(
    (streams, caches): (Arc<dyn StreamStore>, Arc<Caches>),
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let period = (grace / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = signalled(&mut stop) => return,
            _ = tick.tick() => {}
        }
        match streams.expire_publisher_leases(Timestamp::now()).await {
            Ok(owners) if owners.is_empty() => {}
            Ok(owners) => {
                tracing::warn!(
                    offline = owners.len(),
                    "broadcasts went offline: their ingest node stopped renewing them"
                );
                for owner in owners {
                    caches.channel_changed(owner).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "ingest lease sweep failed"),
        }
        let cutoff = chrono::Utc::now() - grace;
        match streams.end_abandoned_streams(Timestamp::from(cutoff)).await {
            Ok(owners) if owners.is_empty() => {}
            Ok(owners) => {
                tracing::info!(
                    ended = owners.len(),
                    "ended broadcasts whose publisher did not return"
                );
                for owner in owners {
                    caches.channel_changed(owner).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "abandoned-broadcast sweep failed"),
        }
    }
}

/// HLS serving and external media servers' callbacks.
pub struct Media {
    broadcasts: Arc<Broadcasts>,
    /// Where live HLS is served from.
    files: MediaStore,
    /// The same, for LL-HLS requests held until a part exists.
    held: Arc<lowlatency::HeldReads>,
    /// Who may read what is served.
    access: Arc<MediaAccess>,
    /// Shared secret of external media servers' callbacks; hooks are off without it.
    hook_secret: Option<String>,
}

impl Media {
    pub(crate) fn new(
        broadcasts: Arc<Broadcasts>,
        files: MediaStore,
        access: Arc<MediaAccess>,
        hook_secret: Option<String>,
    ) -> Self {
        Self {
            broadcasts,
            held: lowlatency::HeldReads::new(files.clone()),
            files,
            access,
            hook_secret,
        }
    }
}

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Media>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(hls::hls_master))
        .routes(routes!(hls::hls_rendition))
        .routes(routes!(hls::preview_image))
        .routes(routes!(vod::vod_file))
        .routes(routes!(vod::vod_rendition))
        .routes(routes!(hooks::media_hook))
}
