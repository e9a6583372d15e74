//! Just enough fragmented MP4 (ISO/IEC 14496-12, CMAF) to cut ffmpeg's live output into
//! LL-HLS parts and segments without re-muxing: the stream is split into top-level boxes;
//! the initialization (`ftyp` + `moov`) names the video track, its timescale and the
//! sample defaults; each fragment (`moof` + `mdat`) gives its video duration and whether
//! it starts with a sync sample. The init's sample entries also describe the rendition
//! for the master playlist (`avcC`'s SPS, `esds`'s audio object type).

use bytes::{Bytes, BytesMut};

use crate::contents::{Contents, all_or_none, plausible_rate};
use crate::h264;

/// A box's four-character type.
pub(crate) type Kind = [u8; 4];

/// A fragment's larger than any part OnAir cuts; a box claiming more is not ffmpeg's.
const MAX_BOX: u64 = 64 * 1024 * 1024;
/// ISO/IEC 14496-12 §8.8.3.1: `sample_is_non_sync_sample`.
const NON_SYNC: u32 = 0x0001_0000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Malformed {
    #[error("a box of {0} bytes")]
    BoxSize(u64),
}

/// Splits the next whole top-level box off `buffer`: its type and its bytes (header
/// included); None until one has arrived whole.
pub(crate) fn take_box(buffer: &mut BytesMut) -> Result<Option<(Kind, Bytes)>, Malformed> {
    let Some((size, header)) = box_size(buffer) else {
        return Ok(None);
    };
    if size < header as u64 || size > MAX_BOX {
        return Err(Malformed::BoxSize(size));
    }
    if (buffer.len() as u64) < size {
        return Ok(None);
    }
    let kind = [buffer[4], buffer[5], buffer[6], buffer[7]];
    Ok(Some((kind, buffer.split_to(size as usize).freeze())))
}

/// A box's declared size and header length, once its header has arrived.
fn box_size(bytes: &[u8]) -> Option<(u64, usize)> {
    let size = u32::from_be_bytes(*bytes.first_chunk::<4>()?);
    match size {
        1 => Some((u64::from_be_bytes(*bytes.get(8..)?.first_chunk()?), 16)),
        // Size 0 runs to the end of the file, which a live stream does not have.
        0 => Some((0, 8)),
        size => Some((u64::from(size), 8)).filter(|_| bytes.len() >= 8),
    }
}

/// A whole box's body, after its header.
fn body(whole: &[u8]) -> Option<&[u8]> {
    let (_, header) = box_size(whole)?;
    whole.get(header..)
}

/// The child boxes of a box body: (type, body).
fn children(mut body: &[u8]) -> impl Iterator<Item = (Kind, &[u8])> {
    std::iter::from_fn(move || {
        let (size, header) = box_size(body)?;
        let size = usize::try_from(size).ok().filter(|s| *s >= header)?;
        let kind = *body.get(4..8)?.first_chunk()?;
        let inner = body.get(header..size)?;
        body = &body[size..];
        Some((kind, inner))
    })
}

/// The body of the first child of `body` at `path` (`[b"trak", b"mdia"]`).
fn find<'a>(body: &'a [u8], path: &[&Kind]) -> Option<&'a [u8]> {
    path.iter().try_fold(body, |body, kind| {
        children(body).find(|(k, _)| k == *kind).map(|(_, b)| b)
    })
}

/// A big-endian u32 at `at`.
fn u32_at(body: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(*body.get(at..)?.first_chunk()?))
}

/// What the initialization says about the video track, which parts are timed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Init {
    track_id: u32,
    timescale: u32,
    /// `trex` defaults: sample duration and flags.
    default_duration: u32,
    default_flags: u32,
}

impl Init {
    /// Reads a `moov` box (header included); None without a video track.
    pub(crate) fn parse(moov: &[u8]) -> Option<Self> {
        let body = body(moov)?;
        let (tkhd, mdhd) = children(body)
            .filter(|(kind, _)| kind == b"trak")
            .map(|(_, trak)| trak)
            .find(|trak| {
                find(trak, &[b"mdia", b"hdlr"]).and_then(|h| h.get(8..12)) == Some(&b"vide"[..])
            })
            .and_then(|trak| Some((find(trak, &[b"tkhd"])?, find(trak, &[b"mdia", b"mdhd"])?)))?;
        let version = *tkhd.first()?;
        let track_id = u32_at(tkhd, if version == 1 { 20 } else { 12 })?;
        let timescale = u32_at(mdhd, if *mdhd.first()? == 1 { 20 } else { 12 })?;
        let trex = children(find(body, &[b"mvex"]).unwrap_or_default())
            .filter(|(kind, _)| kind == b"trex")
            .find(|(_, trex)| u32_at(trex, 4) == Some(track_id))
            .map(|(_, trex)| trex);
        Some(Self {
            track_id,
            timescale: timescale.max(1),
            default_duration: trex.and_then(|t| u32_at(t, 12)).unwrap_or(0),
            default_flags: trex.and_then(|t| u32_at(t, 20)).unwrap_or(0),
        })
    }
}

/// A fragment's video, as a part: how long it plays and whether it starts a GOP.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fragment {
    pub(crate) seconds: f64,
    pub(crate) independent: bool,
    pub(crate) frames: u64,
}

impl Fragment {
    /// Reads a `moof` box (header included) against its initialization; None when it
    /// holds no video.
    pub(crate) fn parse(moof: &[u8], init: &Init) -> Option<Self> {
        let traf = children(body(moof)?)
            .filter(|(kind, _)| kind == b"traf")
            .map(|(_, traf)| traf)
            .find(|traf| {
                find(traf, &[b"tfhd"]).and_then(|t| u32_at(t, 4)) == Some(init.track_id)
            })?;
        let (default_duration, default_flags) = track_defaults(find(traf, &[b"tfhd"])?, init)?;
        let (mut ticks, mut frames, mut independent) = (0u64, 0u64, None);
        for (_, trun) in children(traf).filter(|(kind, _)| kind == b"trun") {
            let flags = u32_at(trun, 0)? & 0x00FF_FFFF;
            let count = u64::from(u32_at(trun, 4)?);
            let mut at = 8 + 4 * usize::from(flags & 0x1 != 0);
            let first_flags = (flags & 0x4 != 0).then(|| u32_at(trun, at));
            at += 4 * usize::from(first_flags.is_some());
            let fields = [0x100, 0x200, 0x400, 0x800].map(|bit| flags & bit != 0);
            let stride = 4 * fields.iter().filter(|f| **f).count();
            // The first sample's flags: its own, else the defaults.
            let flags_at = 4 * (usize::from(fields[0]) + usize::from(fields[1]));
            let first = match (first_flags, fields[2]) {
                (Some(first), _) => first,
                (None, true) => u32_at(trun, at + flags_at),
                (None, false) => Some(default_flags),
            };
            if count > 0 && independent.is_none() {
                independent = Some(first? & NON_SYNC == 0);
            }
            if fields[0] {
                // Every sample's record must be there: a count is not trusted alone.
                let records = trun.get(at..)?.chunks_exact(stride);
                if (records.len() as u64) < count {
                    return None;
                }
                for record in records.take(count as usize) {
                    ticks += u64::from(u32_at(record, 0)?);
                }
            } else {
                ticks = ticks.checked_add(count.checked_mul(u64::from(default_duration))?)?;
            }
            frames += count;
        }
        Some(Self {
            seconds: ticks as f64 / f64::from(init.timescale),
            independent: independent?,
            frames,
        })
    }
}

/// A track fragment's default sample duration and flags: its `tfhd`'s, else the `trex`'s.
fn track_defaults(tfhd: &[u8], init: &Init) -> Option<(u32, u32)> {
    let flags = u32_at(tfhd, 0)? & 0x00FF_FFFF;
    // After version/flags and track_ID: base_data_offset (8 bytes), sample description
    // index, default duration, default size, default flags (4 each), when present.
    let mut at = 8 + 8 * usize::from(flags & 0x01 != 0) + 4 * usize::from(flags & 0x02 != 0);
    let duration = match flags & 0x08 != 0 {
        true => u32_at(tfhd, at)?,
        false => init.default_duration,
    };
    at += 4 * usize::from(flags & 0x08 != 0) + 4 * usize::from(flags & 0x10 != 0);
    let sample_flags = match flags & 0x20 != 0 {
        true => u32_at(tfhd, at)?,
        false => init.default_flags,
    };
    Some((duration, sample_flags))
}

/// Describes a rendition from its initialization (`ftyp` + `moov`) and a segment of it.
pub(crate) fn contents(init: &[u8], segment: &[u8]) -> Contents {
    let mut boxes = BytesMut::from(init);
    let moov = std::iter::from_fn(|| take_box(&mut boxes).ok().flatten())
        .find(|(kind, _)| kind == b"moov")
        .map(|(_, moov)| moov);
    let Some(moov) = moov else {
        return Contents::default();
    };
    let entries: Vec<(Kind, &[u8])> = children(body(&moov).unwrap_or_default())
        .filter(|(kind, _)| kind == b"trak")
        .filter_map(|(_, trak)| find(trak, &[b"mdia", b"minf", b"stbl", b"stsd"]))
        // stsd: version and flags, entry count, then the sample entries.
        .filter_map(|stsd| children(stsd.get(8..)?).next())
        .collect();
    let sequence = entries
        .iter()
        .find(|(kind, _)| kind == b"avc1" || kind == b"avc3")
        // A visual sample entry's fields take 78 bytes before its child boxes.
        .and_then(|(_, entry)| find(entry.get(78..)?, &[b"avcC"]))
        .and_then(first_sps)
        .and_then(h264::sequence);
    let codecs = entries.iter().map(|(kind, entry)| match kind {
        b"avc1" | b"avc3" => sequence.as_ref().map(|s| s.codec.clone()),
        // An audio sample entry's fields take 28 bytes.
        b"mp4a" => find(entry.get(28..)?, &[b"esds"]).and_then(audio_codec),
        _ => None,
    });
    let measured = Init::parse(&moov).and_then(|init| {
        let mut boxes = BytesMut::from(segment);
        let fragments = std::iter::from_fn(|| take_box(&mut boxes).ok().flatten())
            .filter(|(kind, _)| kind == b"moof")
            .filter_map(|(_, moof)| Fragment::parse(&moof, &init));
        let (frames, seconds) = fragments.fold((0u64, 0.0), |(frames, seconds), f| {
            (frames + f.frames, seconds + f.seconds)
        });
        plausible_rate(frames, seconds)
    });
    Contents {
        resolution: sequence.as_ref().map(|s| (s.width, s.height)),
        codecs: all_or_none(codecs),
        frame_rate: sequence.as_ref().and_then(|s| s.frame_rate).or(measured),
    }
}

/// The first sequence parameter set in an `avcC` body (AVCDecoderConfigurationRecord).
fn first_sps(avcc: &[u8]) -> Option<&[u8]> {
    // version, profile, compatibility, level, length size; then the SPS count (low 5
    // bits) and each SPS behind its 16-bit length.
    if avcc.get(5)? & 0x1F == 0 {
        return None;
    }
    let length = usize::from(u16::from_be_bytes(*avcc.get(6..)?.first_chunk()?));
    avcc.get(8..8 + length)
}

/// `mp4a.40.<audio object type>` from an `esds` body (ISO/IEC 14496-1 descriptors).
fn audio_codec(esds: &[u8]) -> Option<String> {
    let mut body = esds.get(4..)?;
    // ES_Descriptor (3) holds the DecoderConfigDescriptor (4), which holds the
    // DecoderSpecificInfo (5): the AudioSpecificConfig.
    let (tag, es) = descriptor(&mut body)?;
    let es_flags = *es.get(2).filter(|_| tag == 3)?;
    // After ES_ID and the flags: a dependency, a URL and an OCR stream, as flagged.
    let mut skip = 3 + 2 * usize::from(es_flags & 0x80 != 0);
    if es_flags & 0x40 != 0 {
        skip += 1 + usize::from(*es.get(skip)?);
    }
    skip += 2 * usize::from(es_flags & 0x20 != 0);
    let mut es = es.get(skip..)?;
    let (tag, config) = descriptor(&mut es)?;
    let object_type_indication = *config.first().filter(|_| tag == 4)?;
    let mut specific = config.get(13..)?;
    match (object_type_indication, descriptor(&mut specific)) {
        (0x40, Some((5, info))) => {
            let audio_object_type = info.first()? >> 3;
            (audio_object_type != 31).then(|| format!("mp4a.40.{audio_object_type}"))
        }
        (0x6B | 0x69, _) => Some("mp4a.40.34".into()),
        _ => None,
    }
}

/// The next descriptor in `body`: its tag and contents (the size is 7 bits a byte, the
/// top bit saying another follows).
fn descriptor<'a>(body: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let bytes: &'a [u8] = body;
    let tag = *bytes.first()?;
    let (mut size, mut at) = (0usize, 1);
    loop {
        let byte = *bytes.get(at)?;
        at += 1;
        size = (size << 7) | usize::from(byte & 0x7F);
        if byte & 0x80 == 0 || at == 5 {
            break;
        }
    }
    let contents = bytes.get(at..at + size)?;
    *body = &bytes[at + size..];
    Some((tag, contents))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two seconds of a 30 fps test pattern with a keyframe a second, in fragments of a
    /// third of a second.
    fn fragmented(size: &str, audio: &str) -> Vec<u8> {
        let output = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=size={size}:rate=30"))
            .args([
                "-f", "lavfi", "-i", "sine", "-t", "2", "-c:v", "libx264", "-g", "30",
            ])
            .args(["-pix_fmt", "yuv420p", "-c:a", audio, "-f", "mp4"])
            .args(["-movflags", crate::transcoder::FRAGMENTED_MP4_FLAGS])
            .args(["-frag_duration", "333333", "pipe:1"])
            .output()
            .unwrap();
        output.stdout
    }

    #[test]
    fn cuts_a_stream_into_timed_parts_starting_at_keyframes() {
        let stream = fragmented("640x360", "aac");
        let mut buffer = BytesMut::new();
        let mut kinds = Vec::new();
        let (mut init, mut parts) = (None, Vec::new());
        // Arriving in odd pieces, as from a socket.
        for piece in stream.chunks(1000) {
            buffer.extend_from_slice(piece);
            while let Some((kind, bytes)) = take_box(&mut buffer).unwrap() {
                match &kind {
                    b"moov" => init = Init::parse(&bytes),
                    b"moof" => parts.push(Fragment::parse(&bytes, init.as_ref().unwrap())),
                    _ => {}
                }
                kinds.push(kind);
            }
        }
        assert_eq!(&kinds[..3], [*b"ftyp", *b"moov", *b"moof"]);
        // The audio ffmpeg flushes after the last video frame comes alone: no part.
        assert_eq!(parts.pop(), Some(None));
        let parts: Vec<Fragment> = parts.into_iter().map(Option::unwrap).collect();
        assert_eq!(parts.len(), 6, "{parts:?}");
        for (index, part) in parts.iter().enumerate() {
            assert_eq!(part.independent, index % 3 == 0, "{parts:?}");
            assert_eq!(part.frames, 10);
            assert!((part.seconds - 1.0 / 3.0).abs() < 1e-3, "{parts:?}");
        }
    }

    #[test]
    fn describes_a_rendition_from_its_init_and_a_segment() {
        let stream = fragmented("854x480", "aac");
        let mut buffer = BytesMut::from(&stream[..]);
        let mut init = Vec::new();
        while let Some((kind, bytes)) = take_box(&mut buffer).unwrap() {
            if kind == *b"moof" {
                break;
            }
            init.extend_from_slice(&bytes);
        }
        let described = contents(&init, &stream[init.len()..]);
        assert_eq!(described.resolution, Some((854, 480)));
        assert_eq!(described.frame_rate, Some(30.0));
        assert_eq!(described.codecs.len(), 2, "{described:?}");
        assert!(described.codecs[0].starts_with("avc1.64"), "{described:?}");
        assert_eq!(described.codecs[1], "mp4a.40.2");
        assert_eq!(contents(b"junk", b"junk"), Contents::default());
    }

    #[test]
    fn refuses_boxes_it_cannot_frame() {
        let mut tiny = BytesMut::from(&[0, 0, 0, 4, b'f', b'r', b'e', b'e'][..]);
        assert_eq!(take_box(&mut tiny), Err(Malformed::BoxSize(4)));
        let mut huge = BytesMut::from(&[0xFF, 0, 0, 0, b'm', b'd', b'a', b't'][..]);
        assert!(take_box(&mut huge).is_err());
        let mut partial = BytesMut::from(&[0, 0, 0, 16, b'm', b'd', b'a', b't', 1][..]);
        assert_eq!(take_box(&mut partial), Ok(None));
        assert_eq!(Init::parse(b"junk"), None);
        let init = Init {
            track_id: 1,
            timescale: 1,
            default_duration: 0,
            default_flags: 0,
        };
        assert_eq!(Fragment::parse(b"\0\0\0\x08moof", &init), None);
    }
}
