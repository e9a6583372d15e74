//! Just enough MPEG-TS (ISO/IEC 13818-1) to find what an SRT publisher's video is: the
//! program map names the video stream, and its first H.264 sequence parameter set gives
//! the source height that sets the ladder. The stream itself goes to ffmpeg untouched.

use crate::h264;

const PACKET: usize = 188;
const SYNC: u8 = 0x47;
const PAT_PID: u16 = 0;
/// ISO/IEC 13818-1 Table 2-34: H.264 video.
const STREAM_TYPE_H264: u8 = 0x1B;
/// Stream types that are video in another codec: MPEG-1/2, MPEG-4 part 2, HEVC, VVC.
const OTHER_VIDEO: [u8; 5] = [0x01, 0x02, 0x10, 0x24, 0x33];
/// Video bytes searched for a sequence parameter set before giving up.
const MAX_VIDEO_BYTES: usize = 512 * 1024;

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

#[derive(Default)]
pub(crate) struct Sniffer {
    /// Bytes of an incomplete packet from the last push.
    partial: Vec<u8>,
    pmt_pid: Option<u16>,
    video_pid: Option<u16>,
    /// The video elementary stream from its first unit start.
    video: Vec<u8>,
}

impl Sniffer {
    /// Reads `bytes` (any split of the stream) and says what is known so far.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Source {
        self.partial.extend_from_slice(bytes);
        let whole = self.partial.len() / PACKET * PACKET;
        let packets: Vec<u8> = self.partial.drain(..whole).collect();
        for packet in packets.chunks_exact(PACKET) {
            let found = self.packet(packet);
            if found != Source::Unknown {
                return found;
            }
        }
        Source::Unknown
    }

    fn packet(&mut self, packet: &[u8]) -> Source {
        if packet[0] != SYNC {
            return Source::Unreadable;
        }
        let pid = u16::from_be_bytes([packet[1] & 0x1F, packet[2]]);
        let unit_start = packet[1] & 0x40 != 0;
        let adaptation = packet[3] & 0x20 != 0;
        let has_payload = packet[3] & 0x10 != 0;
        let offset = if adaptation {
            5 + usize::from(packet[4])
        } else {
            4
        };
        let Some(payload) = packet.get(offset..).filter(|_| has_payload) else {
            return Source::Unknown;
        };
        if pid == PAT_PID && unit_start {
            self.pmt_pid = section(payload).and_then(program_map_pid).or(self.pmt_pid);
        } else if Some(pid) == self.pmt_pid && unit_start && self.video_pid.is_none() {
            match section(payload).and_then(video_stream) {
                Some((STREAM_TYPE_H264, video_pid)) => self.video_pid = Some(video_pid),
                Some(_) => return Source::Unreadable,
                None => {}
            }
        } else if Some(pid) == self.video_pid && (unit_start || !self.video.is_empty()) {
            self.video.extend_from_slice(payload);
            return match first_sps(&self.video) {
                Some(nal) => h264::sps_height(nal).map_or(Source::Unreadable, Source::Height),
                None if self.video.len() > MAX_VIDEO_BYTES => Source::Unreadable,
                None => Source::Unknown,
            };
        }
        Source::Unknown
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

/// The first video stream in a program map section: its stream type and PID.
fn video_stream(body: &[u8]) -> Option<(u8, u16)> {
    let info_length = usize::from(u16::from_be_bytes([*body.get(2)? & 0x0F, *body.get(3)?]));
    let mut streams = body.get(4 + info_length..)?;
    while streams.len() >= 5 {
        let stream_type = streams[0];
        let pid = u16::from_be_bytes([streams[1] & 0x1F, streams[2]]);
        if stream_type == STREAM_TYPE_H264 || OTHER_VIDEO.contains(&stream_type) {
            return Some((stream_type, pid));
        }
        let es_info = usize::from(u16::from_be_bytes([streams[3] & 0x0F, streams[4]]));
        streams = streams.get(5 + es_info..)?;
    }
    None
}

/// The first complete sequence parameter set NAL unit in an Annex B byte stream (its
/// end is the next start code).
fn first_sps(stream: &[u8]) -> Option<&[u8]> {
    let starts: Vec<usize> = stream
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1])
        .map(|(i, _)| i + 3)
        .collect();
    starts.windows(2).find_map(|pair| {
        let nal = &stream[pair[0]..pair[1] - 3];
        (nal.first()? & 0x1F == 7).then_some(nal)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `frames` of a test pattern of `size` as MPEG-TS from ffmpeg, in `codec`.
    fn transport_stream(size: &str, codec: &str) -> Vec<u8> {
        let output = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=size={size}"))
            .args(["-f", "lavfi", "-i", "sine", "-frames:v", "3", "-c:v", codec])
            .args([
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts", "pipe:1",
            ])
            .output()
            .unwrap();
        output.stdout
    }

    #[test]
    fn finds_the_height_of_h264_in_any_split() {
        let stream = transport_stream("1920x1080", "libx264");
        let mut sniffer = Sniffer::default();
        let found = stream
            .chunks(1316 - 7)
            .map(|chunk| sniffer.push(chunk))
            .find(|found| *found != Source::Unknown);
        assert_eq!(found, Some(Source::Height(1080)));
        let mut whole = Sniffer::default();
        assert_eq!(whole.push(&stream), Source::Height(1080));
    }

    #[test]
    fn other_codecs_and_garbage_are_unreadable() {
        let mpeg2 = transport_stream("640x360", "mpeg2video");
        assert_eq!(Sniffer::default().push(&mpeg2), Source::Unreadable);
        assert_eq!(Sniffer::default().push(&[0u8; 400]), Source::Unreadable);
        assert_eq!(Sniffer::default().push(&[SYNC; 100]), Source::Unknown);
    }
}
