//! Just enough MPEG-TS (ISO/IEC 13818-1) to learn what a stream holds without ffmpeg: the
//! program map names the video and audio streams, the video's first H.264 sequence
//! parameter set gives its size and codec, the audio's first ADTS header its codec, and
//! the video's timestamps its frame rate. Ingest sniffs an SRT publisher's source height
//! (which sets the ladder) from it; the master playlist describes each rendition from its
//! first segment. The stream itself goes to ffmpeg untouched.

use crate::contents::{Contents, all_or_none, plausible_rate};
use crate::h264::{self, Sequence};

const PACKET: usize = 188;
const SYNC: u8 = 0x47;
const PAT_PID: u16 = 0;
/// ISO/IEC 13818-1 Table 2-34: H.264 video.
const STREAM_TYPE_H264: u8 = 0x1B;
/// Stream types that are video in another codec: MPEG-1/2, MPEG-4 part 2, HEVC, VVC.
const OTHER_VIDEO: [u8; 5] = [0x01, 0x02, 0x10, 0x24, 0x33];
/// AAC in ADTS frames.
const STREAM_TYPE_ADTS: u8 = 0x0F;
/// MPEG-1 and MPEG-2 audio (layers I to III).
const STREAM_TYPE_MPEG_AUDIO: [u8; 2] = [0x03, 0x04];
/// Other audio: AAC in LATM, AC-3, E-AC-3.
const OTHER_AUDIO: [u8; 3] = [0x11, 0x81, 0x87];
/// Video bytes searched for a sequence parameter set before giving up.
const MAX_VIDEO_BYTES: usize = 512 * 1024;
/// The PES clock: 90 kHz.
const PTS_HZ: f64 = 90_000.0;

/// What the sniffer has learned about the video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Keep feeding it.
    Unknown,
    /// H.264 this many lines tall.
    Height(u32),
    /// Not H.264, or no sequence parameter set where it should be.
    Unreadable,
}

/// Reads a live transport stream as it arrives until it knows the source's height.
#[derive(Default)]
pub(crate) struct Sniffer {
    /// Bytes of an incomplete packet from the last push.
    partial: Vec<u8>,
    program: Program,
    video: NalUnits,
}

impl Sniffer {
    /// Reads `bytes` (any split of the stream) and says what is known so far.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Source {
        let mut buffered = std::mem::take(&mut self.partial);
        buffered.extend_from_slice(bytes);
        let whole = buffered.len() / PACKET * PACKET;
        let found = buffered[..whole]
            .chunks_exact(PACKET)
            .map(|packet| self.packet(packet))
            .find(|found| *found != Source::Unknown)
            .unwrap_or(Source::Unknown);
        buffered.drain(..whole);
        self.partial = buffered;
        found
    }

    /// Whether the program map names AAC in ADTS frames as the audio.
    pub(crate) fn adts_audio(&self) -> bool {
        self.program
            .audio
            .is_some_and(|(t, _)| t == STREAM_TYPE_ADTS)
    }

    fn packet(&mut self, packet: &[u8]) -> Source {
        let Some(packet) = Packet::parse(packet) else {
            return Source::Unreadable;
        };
        if self.program.read_table(&packet) {
            return match self.program.video {
                Some((stream_type, _)) if stream_type != STREAM_TYPE_H264 => Source::Unreadable,
                _ => Source::Unknown,
            };
        }
        if self.program.video.map(|(_, pid)| pid) != Some(packet.pid) {
            return Source::Unknown;
        }
        if let Some(sps) = self.video.push(&packet) {
            return h264::sequence(sps).map_or(Source::Unreadable, |s| Source::Height(s.height));
        }
        if self.video.len() > MAX_VIDEO_BYTES {
            Source::Unreadable
        } else {
            Source::Unknown
        }
    }
}

/// Describes a whole segment (or any stretch of a stream from its program tables on).
pub(crate) fn contents(segment: &[u8]) -> Contents {
    let mut program = Program::default();
    let mut video = NalUnits::default();
    let mut sequence: Option<Sequence> = None;
    let mut timestamps = Timestamps::default();
    let mut audio_codec: Option<Option<String>> = None;
    for packet in segment.chunks_exact(PACKET).map_while(Packet::parse) {
        if program.read_table(&packet) {
            continue;
        }
        if program.video.map(|(_, pid)| pid) == Some(packet.pid) {
            if packet.unit_start {
                timestamps.add(pes(packet.payload).and_then(|(pts, _)| pts));
            }
            let h264 = program.video.is_some_and(|(t, _)| t == STREAM_TYPE_H264);
            if h264 && sequence.is_none() && video.len() <= MAX_VIDEO_BYTES {
                sequence = video.push(&packet).and_then(h264::sequence);
            }
        } else if program.audio.map(|(_, pid)| pid) == Some(packet.pid)
            && packet.unit_start
            && audio_codec.is_none()
        {
            let (stream_type, _) = program.audio.unwrap_or_default();
            audio_codec =
                pes(packet.payload).map(|(_, frame)| audio_codec_name(stream_type, frame));
        }
    }
    let video_codec = match program.video {
        Some((STREAM_TYPE_H264, _)) => Some(sequence.as_ref().map(|s| s.codec.clone())),
        Some(_) => Some(None),
        None => None,
    };
    Contents {
        resolution: sequence.as_ref().map(|s| (s.width, s.height)),
        codecs: all_or_none([video_codec, audio_codec].into_iter().flatten()),
        frame_rate: sequence
            .as_ref()
            .and_then(|s| s.frame_rate)
            .or_else(|| timestamps.frame_rate()),
    }
}

/// One transport packet: its PID, whether a PES packet or table section starts in it,
/// and its payload (empty when it has none).
struct Packet<'a> {
    pid: u16,
    unit_start: bool,
    payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// None when `packet` is not a transport packet (no sync byte).
    fn parse(packet: &'a [u8]) -> Option<Self> {
        if packet.first() != Some(&SYNC) || packet.len() < 4 {
            return None;
        }
        let adaptation = packet[3] & 0x20 != 0;
        let has_payload = packet[3] & 0x10 != 0;
        let offset = if adaptation {
            5 + usize::from(*packet.get(4)?)
        } else {
            4
        };
        Some(Self {
            pid: u16::from_be_bytes([packet[1] & 0x1F, packet[2]]),
            unit_start: packet[1] & 0x40 != 0,
            payload: packet.get(offset..).filter(|_| has_payload).unwrap_or(&[]),
        })
    }
}

/// The first program's video and audio streams, from its tables: (stream type, PID).
#[derive(Default)]
struct Program {
    map_pid: Option<u16>,
    video: Option<(u8, u16)>,
    audio: Option<(u8, u16)>,
}

impl Program {
    /// Reads `packet` if it carries one of the program's tables; says whether it did.
    fn read_table(&mut self, packet: &Packet) -> bool {
        if packet.pid == PAT_PID {
            if packet.unit_start {
                self.map_pid = section(packet.payload)
                    .and_then(program_map_pid)
                    .or(self.map_pid);
            }
            return true;
        }
        if Some(packet.pid) != self.map_pid {
            return false;
        }
        if packet.unit_start && self.video.is_none() && self.audio.is_none() {
            let streams = section(packet.payload).map(elementary_streams);
            for (stream_type, pid) in streams.into_iter().flatten() {
                if stream_type == STREAM_TYPE_H264 || OTHER_VIDEO.contains(&stream_type) {
                    self.video = self.video.or(Some((stream_type, pid)));
                } else if [STREAM_TYPE_ADTS]
                    .iter()
                    .chain(&STREAM_TYPE_MPEG_AUDIO)
                    .chain(&OTHER_AUDIO)
                    .any(|t| *t == stream_type)
                {
                    self.audio = self.audio.or(Some((stream_type, pid)));
                }
            }
        }
        true
    }
}

/// A PSI section's body after its pointer field and 8-byte header, without the CRC.
fn section(payload: &[u8]) -> Option<&[u8]> {
    let pointer = usize::from(*payload.first()?);
    let table = payload.get(1 + pointer..)?;
    let length = usize::from(u16::from_be_bytes([*table.get(1)? & 0x0F, *table.get(2)?]));
    // Header after the length: 5 bytes; the CRC: 4.
    table.get(8..(3 + length).checked_sub(4)?)
}

/// The first program's map PID in a program association section.
fn program_map_pid(body: &[u8]) -> Option<u16> {
    body.chunks_exact(4)
        .find(|entry| u16::from_be_bytes([entry[0], entry[1]]) != 0)
        .map(|entry| u16::from_be_bytes([entry[2] & 0x1F, entry[3]]))
}

/// The elementary streams in a program map section: (stream type, PID).
fn elementary_streams(body: &[u8]) -> Vec<(u8, u16)> {
    let mut found = Vec::new();
    let Some(&[_, _, high, low]) = body.first_chunk::<4>() else {
        return found;
    };
    let info_length = usize::from(u16::from_be_bytes([high & 0x0F, low]));
    let mut streams = body.get(4 + info_length..).unwrap_or_default();
    while let Some(&[stream_type, pid_high, pid_low, info_high, info_low]) =
        streams.first_chunk::<5>()
    {
        found.push((stream_type, u16::from_be_bytes([pid_high & 0x1F, pid_low])));
        let es_info = usize::from(u16::from_be_bytes([info_high & 0x0F, info_low]));
        streams = streams.get(5 + es_info..).unwrap_or_default();
    }
    found
}

/// A PES packet's presentation timestamp and the payload after its header, from the
/// transport payload that starts it.
fn pes(payload: &[u8]) -> Option<(Option<u64>, &[u8])> {
    let (&[0, 0, 1, _, _, _, _, flags, header_length], rest) = payload.split_first_chunk::<9>()?
    else {
        return None;
    };
    let pts = (flags & 0x80 != 0)
        .then(|| rest.first_chunk::<5>())
        .flatten()
        .map(|b| {
            (u64::from(b[0] >> 1) & 0x07) << 30
                | u64::from(u16::from_be_bytes([b[1], b[2]]) >> 1) << 15
                | u64::from(u16::from_be_bytes([b[3], b[4]]) >> 1)
        });
    Some((pts, rest.get(usize::from(header_length)..)?))
}

/// The RFC 6381 name of an audio stream from its first frame; None if not nameable.
fn audio_codec_name(stream_type: u8, frame: &[u8]) -> Option<String> {
    match (stream_type, frame) {
        // ADTS: 12 sync bits, then the profile (object type - 1) in the third byte.
        (STREAM_TYPE_ADTS, [0xFF, second, third, ..]) if second & 0xF0 == 0xF0 => {
            Some(format!("mp4a.40.{}", (third >> 6) + 1))
        }
        // MPEG audio: layer bits 01 are layer III (MP3).
        (t, [0xFF, second, ..]) if STREAM_TYPE_MPEG_AUDIO.contains(&t) && second & 0x06 == 0x02 => {
            Some("mp4a.40.34".into())
        }
        _ => None,
    }
}

/// A video stream's frame count and timestamp span, for its frame rate.
#[derive(Default)]
struct Timestamps {
    frames: u32,
    earliest: Option<u64>,
    latest: Option<u64>,
}

impl Timestamps {
    fn add(&mut self, pts: Option<u64>) {
        if let Some(pts) = pts {
            self.frames += 1;
            self.earliest = Some(self.earliest.map_or(pts, |e| e.min(pts)));
            self.latest = Some(self.latest.map_or(pts, |l| l.max(pts)));
        }
    }

    /// Frames per second; None for fewer than two frames or an implausible rate (a
    /// timestamp wrap inside the segment).
    fn frame_rate(&self) -> Option<f64> {
        let span = self.latest?.checked_sub(self.earliest?)?;
        plausible_rate(u64::from(self.frames.checked_sub(1)?), span as f64 / PTS_HZ)
    }
}

/// An H.264 Annex B byte stream assembled from PES packets, scanned once for the first
/// complete sequence parameter set NAL unit.
#[derive(Default)]
struct NalUnits {
    stream: Vec<u8>,
    /// Where the next scan for a start code begins.
    scanned: usize,
    /// Where the NAL unit being read begins (after its start code).
    unit: Option<usize>,
}

impl NalUnits {
    fn len(&self) -> usize {
        self.stream.len()
    }

    /// Appends `packet`'s video (from its first unit start) and returns the first
    /// sequence parameter set, once one is complete (its end is the next start code).
    fn push(&mut self, packet: &Packet) -> Option<&[u8]> {
        let bytes = if packet.unit_start {
            pes(packet.payload)?.1
        } else if self.stream.is_empty() {
            return None;
        } else {
            packet.payload
        };
        self.stream.extend_from_slice(bytes);
        while let Some(found) = self.stream[self.scanned..]
            .windows(3)
            .position(|w| w == [0, 0, 1])
        {
            let start_code = self.scanned + found;
            self.scanned = start_code + 3;
            if let Some(unit) = self.unit.replace(self.scanned)
                && self
                    .stream
                    .get(unit)
                    .is_some_and(|header| header & 0x1F == 7)
            {
                return Some(&self.stream[unit..start_code]);
            }
        }
        // A start code may straddle this push and the next.
        self.scanned = self.scanned.max(self.stream.len().saturating_sub(2));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Half a second of a test pattern of `size` at 30 fps as MPEG-TS from ffmpeg.
    fn transport_stream(size: &str, video: &str, audio: &str) -> Vec<u8> {
        let output = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=size={size}:rate=30"))
            .args(["-f", "lavfi", "-i", "sine", "-t", "0.5", "-c:v", video])
            .args([
                "-pix_fmt", "yuv420p", "-c:a", audio, "-f", "mpegts", "pipe:1",
            ])
            .output()
            .unwrap();
        output.stdout
    }

    #[test]
    fn finds_the_height_of_h264_in_any_split() {
        let stream = transport_stream("1920x1080", "libx264", "aac");
        let mut sniffer = Sniffer::default();
        let found = stream
            .chunks(1316 - 7)
            .map(|chunk| sniffer.push(chunk))
            .find(|found| *found != Source::Unknown);
        assert_eq!(found, Some(Source::Height(1080)));
        let mut bytewise = Sniffer::default();
        let found = stream
            .iter()
            .map(|b| bytewise.push(&[*b]))
            .find(|f| *f != Source::Unknown);
        assert_eq!(found, Some(Source::Height(1080)));
        let mut whole = Sniffer::default();
        assert_eq!(whole.push(&stream), Source::Height(1080));
        assert!(whole.adts_audio());
        let mut mp3 = Sniffer::default();
        mp3.push(&transport_stream("640x360", "libx264", "libmp3lame"));
        assert!(!mp3.adts_audio());
    }

    #[test]
    fn other_codecs_and_garbage_are_unreadable() {
        let mpeg2 = transport_stream("640x360", "mpeg2video", "aac");
        assert_eq!(Sniffer::default().push(&mpeg2), Source::Unreadable);
        assert_eq!(Sniffer::default().push(&[0u8; 400]), Source::Unreadable);
        assert_eq!(Sniffer::default().push(&[SYNC; 100]), Source::Unknown);
    }

    #[test]
    fn describes_a_segment_as_players_need_it() {
        // 854 wide is cropped from 864 coded: by pairs of columns in 4:2:0.
        let described = contents(&transport_stream("854x480", "libx264", "aac"));
        assert_eq!(described.resolution, Some((854, 480)));
        assert_eq!(described.codecs.len(), 2, "{described:?}");
        assert!(described.codecs[0].starts_with("avc1.64"), "{described:?}");
        assert_eq!(described.codecs[1], "mp4a.40.2");
        assert_eq!(described.frame_rate, Some(30.0));
        let mut undeclared = Timestamps::default();
        for frame in 0..30 {
            undeclared.add(Some(frame * 3003));
        }
        let rate = undeclared.frame_rate().unwrap();
        assert!((rate - 29.97).abs() < 0.001, "{rate}");

        let mp3 = contents(&transport_stream("640x360", "libx264", "libmp3lame"));
        assert_eq!(mp3.codecs.get(1).map(String::as_str), Some("mp4a.40.34"));
        // A codec we cannot name makes the whole list go: all or none.
        let mpeg2 = contents(&transport_stream("640x360", "mpeg2video", "aac"));
        assert_eq!((mpeg2.resolution, mpeg2.codecs.len()), (None, 0));
        assert_eq!(contents(b"not a transport stream"), Contents::default());
        assert_eq!(contents(&[SYNC; PACKET * 3]), Contents::default());
    }
}
