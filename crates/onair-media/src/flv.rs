//! Just enough FLV muxing to hand RTMP's audio/video messages to ffmpeg: RTMP carries FLV
//! tag bodies, so each message becomes one tag behind a file header.

use bytes::{BufMut, Bytes, BytesMut};

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
}
