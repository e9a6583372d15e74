//! Just enough FLV to hand RTMP's audio/video messages to ffmpeg: RTMP carries FLV tag
//! bodies, so each message becomes one tag behind a file header; and the picture height
//! an H.264 publisher announces in its first video message, which sets the ladder.

use bytes::{BufMut, Bytes, BytesMut};

use crate::h264;

/// `FLV`, version 1, audio and video present, 9-byte header, then PreviousTagSize0.
pub(crate) const HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 0b101, 0, 0, 0, 9, 0, 0, 0, 0];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagKind {
    Audio = 8,
    Video = 9,
}

/// One FLV tag: 11-byte tag header, the body, and the trailing PreviousTagSize.
pub(crate) fn tag(kind: TagKind, timestamp_ms: u32, body: &[u8]) -> Bytes {
    // The body length field has 24 bits; RTMP messages are far smaller.
    let size = u32::try_from(body.len())
        .unwrap_or(u32::MAX)
        .min(0x00FF_FFFF);
    let mut out = BytesMut::with_capacity(11 + body.len() + 4);
    out.put_u8(kind as u8);
    out.put_uint(u64::from(size), 3);
    out.put_uint(u64::from(timestamp_ms & 0x00FF_FFFF), 3);
    out.put_u8((timestamp_ms >> 24) as u8);
    out.put_uint(0, 3); // stream id, always 0
    out.put_slice(&body[..size as usize]);
    out.put_u32(11 + size);
    out.freeze()
}

/// FLV's codec id of H.264 (the low nibble of a video tag's first byte).
const AVC: u8 = 7;
/// The AVC packet type of a decoder configuration (the tag's second byte).
const AVC_SEQUENCE_HEADER: u8 = 0;

/// The picture height of an H.264 video tag body holding the decoder configuration (what
/// a publisher sends first), from its first sequence parameter set. None for any other
/// tag, another codec, or a configuration that does not parse.
pub(crate) fn source_height(body: &[u8]) -> Option<u32> {
    // Legacy FLV video: frame type and codec id, packet type, composition time (3 bytes),
    // then the AVCDecoderConfigurationRecord. Enhanced RTMP sets the top bit instead.
    let (&[first, packet_type, _, _, _], record) = body.split_first_chunk::<5>()?;
    if first & 0x80 != 0 || first & 0x0F != AVC || packet_type != AVC_SEQUENCE_HEADER {
        return None;
    }
    let mut cursor = std::io::Cursor::new(Bytes::copy_from_slice(record));
    let config = scuffle_h264::AVCDecoderConfigurationRecord::parse(&mut cursor).ok()?;
    h264::sequence(config.sps.first()?).map(|sequence| sequence.height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_layout() {
        let tag = tag(TagKind::Video, 0x0123_4567, &[0xAA, 0xBB]);
        assert_eq!(
            tag.as_ref(),
            &[
                9, 0, 0, 2, 0x23, 0x45, 0x67, 0x01, 0, 0, 0, 0xAA, 0xBB, 0, 0, 0, 13
            ]
        );
    }

    /// The first video tag's body of an FLV file ffmpeg encodes at `size` in `pixels`.
    fn first_video_tag(size: &str, pixels: &str) -> Vec<u8> {
        let output = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=size={size}"))
            .args(["-frames:v", "1", "-c:v", "libx264", "-pix_fmt", pixels])
            .args(["-f", "flv", "pipe:1"])
            .output()
            .unwrap();
        let mut rest = &output.stdout[HEADER.len()..];
        while rest.len() > 11 {
            let size = u32::from_be_bytes([0, rest[1], rest[2], rest[3]]) as usize;
            let body = &rest[11..11 + size];
            if rest[0] == TagKind::Video as u8 {
                return body.to_vec();
            }
            rest = &rest[11 + size + 4..];
        }
        panic!("no video tag");
    }

    #[test]
    fn reads_the_height_an_h264_publisher_announces() {
        assert_eq!(
            source_height(&first_video_tag("1280x720", "yuv420p")),
            Some(720)
        );
        // Coded as 1088 lines, cropped to 1080: by pairs of lines in 4:2:0, by lines in
        // 4:4:4.
        let full_hd = first_video_tag("1920x1080", "yuv420p");
        assert_eq!(source_height(&full_hd), Some(1080));
        let full_chroma = first_video_tag("1920x1080", "yuv444p");
        assert_eq!(source_height(&full_chroma), Some(1080));
        let mut truncated = full_hd.clone();
        truncated.truncate(12);
        for junk in [
            &[][..],
            &[0x17, 0, 0, 0, 0],
            &truncated,
            &[0x27, 0, 0, 0, 0, 1, 2],
        ] {
            assert_eq!(source_height(junk), None, "{junk:?}");
        }
        let mut not_a_header = full_hd;
        not_a_header[1] = 1;
        assert_eq!(source_height(&not_a_header), None);
    }
}
