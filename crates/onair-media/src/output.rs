//! One publish's output. ffmpeg starts once the source's picture height is known (from
//! the publisher's first video message), so the ladder holds only rungs below the
//! source; input before that is held, up to `MAX_HELD` bytes. With ffmpeg start the
//! spool's keeper (mirror, recording) and the task that writes the master playlist once
//! every rendition is playable.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::flv;
use crate::master;
use crate::mirror::Mirror;
use crate::transcoder::{InputFormat, TranscodeSettings, Transcoder};
use crate::{IngestConfig, Publication};

/// Input held while the source's height is unknown; past it, ffmpeg starts without it.
/// Publishers send their video configuration first, within a few kilobytes.
const MAX_HELD: usize = 2 * 1024 * 1024;
/// How long the master playlist waits for every rendition's first segment.
const PLAYABLE_WITHIN: Duration = Duration::from_secs(30);

pub(crate) struct LiveOutput {
    settings: TranscodeSettings,
    store: onair_infra::MediaStore,
    spool: PathBuf,
    input: InputFormat,
    stream_id: uuid::Uuid,
    record: bool,
    /// When the publish was accepted: the start of its publish → playable time.
    accepted: Instant,
    stage: Stage,
}

enum Stage {
    /// Input held for ffmpeg, and its size.
    Held(Vec<Bytes>, usize),
    Running {
        transcoder: Transcoder,
        mirror: Mirror,
    },
}

impl LiveOutput {
    /// The output of `publication`, whose input comes in `input`.
    pub(crate) fn new(
        config: &IngestConfig,
        publication: &Publication,
        input: InputFormat,
    ) -> Self {
        let stream_id = publication.stream_id;
        // RTMP carries FLV tags only: the file header is ours to write.
        let header = match input {
            InputFormat::Flv => Bytes::from_static(&flv::HEADER),
            InputFormat::MpegTs { .. } => Bytes::new(),
        };
        Self {
            settings: config.transcode.clone(),
            store: config.store.clone(),
            spool: config.media_root.join(crate::live_key(stream_id)),
            input,
            stream_id,
            record: publication.record,
            accepted: Instant::now(),
            stage: Stage::Held(vec![header.clone()], header.len()),
        }
    }

    /// Whether ffmpeg waits for the source's height.
    pub(crate) fn waiting(&self) -> bool {
        matches!(self.stage, Stage::Held(..))
    }

    /// An MPEG-TS input's audio turned out to be AAC in ADTS frames (say so before
    /// [`LiveOutput::start`]).
    pub(crate) fn audio_in_adts(&mut self) {
        if let InputFormat::MpegTs { adts_audio } = &mut self.input {
            *adts_audio = true;
        }
    }

    /// Starts ffmpeg for a source `height` pixels tall (None: not known) and hands it
    /// the input held so far. Does nothing once started.
    pub(crate) async fn start(&mut self, height: Option<u32>) -> std::io::Result<()> {
        let Stage::Held(held, _) = &mut self.stage else {
            return Ok(());
        };
        let held = std::mem::take(held);
        let transcoder = Transcoder::spawn(&self.settings, (&self.spool, self.input), self.record, height)
            .inspect_err(|e| {
                tracing::error!(error = %e, ffmpeg = %self.settings.ffmpeg.display(), "cannot start ffmpeg");
            })?;
        let renditions = transcoder.renditions().to_vec();
        tracing::info!(stream_id = %self.stream_id, height, ?renditions, "transcoding");
        let mirror = Mirror::start(
            &self.store,
            (self.spool.clone(), renditions.clone()),
            crate::live_key(self.stream_id),
            self.record,
        );
        tokio::spawn(master::publish_when_ready(
            self.spool.clone(),
            (renditions, transcoder.publish().to_owned()),
            self.record,
            self.accepted,
            PLAYABLE_WITHIN,
        ));
        // Running before the first write: a failed write still stops ffmpeg and the
        // keeper through `finish`.
        self.stage = Stage::Running { transcoder, mirror };
        for bytes in held {
            self.write(bytes).await?;
        }
        Ok(())
    }

    /// Sends input to ffmpeg, or holds it until [`LiveOutput::start`]; past `MAX_HELD`,
    /// starts ffmpeg with the height unknown. Err: ffmpeg is gone.
    pub(crate) async fn write(&mut self, bytes: Bytes) -> std::io::Result<()> {
        match &mut self.stage {
            Stage::Running { transcoder, .. } => transcoder.write(&bytes).await,
            Stage::Held(held, size) => {
                *size += bytes.len();
                held.push(bytes);
                match *size > MAX_HELD {
                    true => Box::pin(self.start(None)).await,
                    false => Ok(()),
                }
            }
        }
    }

    /// Closes ffmpeg's input so it flushes its last segment (killed after `grace`), then
    /// sends what is left to the store. ffmpeg's exit status; None when it never started
    /// or had to be killed.
    pub(crate) async fn finish(self, grace: Duration) -> Option<ExitStatus> {
        match self.stage {
            Stage::Held(..) => None,
            Stage::Running { transcoder, mirror } => {
                let status = transcoder.finish(grace).await;
                mirror.finish().await;
                status
            }
        }
    }
}
