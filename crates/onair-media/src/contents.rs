//! What a rendition holds, as a master playlist variant describes it (RFC 8216 §4.3.4.2),
//! read from its media by `mpegts.rs` (MPEG-TS segments: VOD) or `fmp4.rs` (CMAF: live).

/// A rendition's picture, codecs and frame rate.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Contents {
    /// Pixels wide and tall (H.264 video only).
    pub(crate) resolution: Option<(u32, u32)>,
    /// RFC 6381 names of the video and audio codecs; empty when one is not a codec we can
    /// name exactly (a wrong CODECS makes players skip the rendition, a missing one only
    /// makes them probe).
    pub(crate) codecs: Vec<String>,
    /// Frames per second: what the encoder declares, else measured from the video's
    /// timestamps.
    pub(crate) frame_rate: Option<f64>,
}

/// `named`: each stream's codec name, None for one we cannot name: all or none.
pub(crate) fn all_or_none(named: impl IntoIterator<Item = Option<String>>) -> Vec<String> {
    named
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

/// A measured frame rate, if plausible (a timestamp wrap or a single frame is not).
pub(crate) fn plausible_rate(frames: u64, seconds: f64) -> Option<f64> {
    let rate = frames as f64 / seconds;
    (1.0..=240.0).contains(&rate).then_some(rate)
}
