//! The media plane: a built-in RTMP and SRT ingest that authenticates publishers through
//! the application, feeds each accepted publish to a supervised ffmpeg, and writes adaptive
//! HLS and a preview image under a media root that the HTTP server serves, with the
//! recording of the broadcast as streamed; and turns recordings into VOD ladders and
//! clips.

mod clip;
mod contents;
mod fetch;
mod ffmpeg;
mod flv;
mod fmp4;
mod h264;
mod ingest;
mod ladder;
mod libsrt;
mod master;
mod mirror;
mod mpegts;
mod output;
mod playlist;
mod publishers;
mod recording;
mod rtmp;
mod segmenter;
mod server;
mod srt;
mod transcoder;
mod vod;

use async_trait::async_trait;
use uuid::Uuid;

pub use clip::{ClipOutput, ClipRange, cut_clip};
pub use fetch::{FetchedPlaylist, fetch_playlist, fetch_recording};
pub use ingest::{IngestConfig, SrtConfig};
pub use playlist::{LiveEdge, playlist_duration};
pub use publishers::Publishers;
pub use recording::{LIVE_PLAYLIST, RECORDING_PLAYLIST};
pub use server::{BindError, IngestServer};
pub use transcoder::{MASTER_PLAYLIST, PREVIEW_IMAGE, PREVIEW_SECONDS, TranscodeSettings};
pub use vod::{VodError, VodOutput, VodSettings, build_vod};

/// A publish the application accepted: whose it is and which broadcast it feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub user_id: Uuid,
    pub stream_id: Uuid,
    /// Identifies this publisher connection, so a late "ended" from an old connection
    /// cannot end a newer one.
    pub session_id: Uuid,
    /// True when a publisher came back within the reconnect window and continues a
    /// broadcast.
    pub resumed: bool,
    /// The broadcast is recorded: every segment is kept and listed in the recording
    /// playlists. Otherwise segments that left the live window are deleted.
    pub record: bool,
}

/// Why a publish was refused. Logged and counted; the publisher's connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishRefused {
    #[error("unknown application name")]
    UnknownApp,
    #[error("invalid or rotated stream key")]
    InvalidKey,
    #[error("this stream key is already publishing")]
    AlreadyPublishing,
    #[error("this node is at its ingest capacity")]
    AtCapacity,
    #[error("the platform could not accept the publish right now")]
    Unavailable,
    #[error("the stream key's account is suspended")]
    AccountSuspended,
    #[error("the publisher's encryption does not match the ingest's passphrase")]
    BadPassphrase,
}

impl PublishRefused {
    pub fn reason(self) -> &'static str {
        match self {
            Self::UnknownApp => "unknown_app",
            Self::InvalidKey => "invalid_key",
            Self::AlreadyPublishing => "already_publishing",
            Self::AtCapacity => "at_capacity",
            Self::Unavailable => "unavailable",
            Self::AccountSuspended => "account_suspended",
            Self::BadPassphrase => "bad_passphrase",
        }
    }
}

/// How a publish ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishEnd {
    /// The publisher stopped or disconnected; it may come back within the grace window.
    PublisherLeft,
    /// ffmpeg failed; the broadcast ends.
    TranscoderFailed,
    /// The application stopped it (stream key rotated, broadcast ended), having already
    /// recorded the end.
    Stopped,
}

/// What the media plane needs from the application: authenticate a stream key and move
/// the broadcast through its lifecycle.
#[async_trait]
pub trait PublishHandler: Send + Sync + 'static {
    /// Whether `stream_key` may publish, without attaching it to anything: checked
    /// before a handshake that can still fail, so a failed one leaves no trace.
    async fn key_valid(&self, stream_key: &str) -> Result<(), PublishRefused>;
    async fn publish_started(&self, stream_key: &str) -> Result<Publication, PublishRefused>;
    async fn publish_ended(&self, publication: &Publication, end: PublishEnd);
    /// Whether the publish may go on: its broadcast is still live with it. Asked every
    /// few seconds, so that an end written by another node stops it too.
    async fn still_live(&self, publication: &Publication) -> bool;
}

/// A live broadcast's HLS key prefix in the media store (and path under the spool).
pub fn live_key(stream_id: Uuid) -> String {
    format!("live/{stream_id}")
}

/// The key of a rendition's recording as streamed: `live/<stream_id>/<rendition>/recording.m3u8`.
pub fn recording_key(stream_id: Uuid, rendition: &str) -> String {
    format!("{}/{rendition}/{RECORDING_PLAYLIST}", live_key(stream_id))
}

/// Strips an RTMP publishing name down to the key: OBS and others may append `?query`.
pub fn stream_key_of(publishing_name: &str) -> &str {
    publishing_name.split('?').next().unwrap_or_default().trim()
}

#[cfg(test)]
mod tests;
