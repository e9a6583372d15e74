//! The one thing ingest reads from H.264 itself: the picture height in a sequence
//! parameter set, which sets the rendition ladder.

/// The picture height a sequence parameter set NAL unit (header byte included, emulation
/// prevention bytes still in) describes; None if it does not parse.
pub(crate) fn sps_height(nal: &[u8]) -> Option<u32> {
    let sps = scuffle_h264::Sps::parse_with_emulation_prevention(nal).ok()?;
    // H.264 §7.4.2.1.1. The crate's own height() assumes 4:2:0 and does unchecked
    // arithmetic on values the publisher controls.
    let field_factor = if sps.mb_adaptive_frame_field_flag.is_none() {
        1
    } else {
        2
    };
    // 4:2:0 (the default without the extension) crops in pairs of lines.
    let chroma_420 = sps
        .ext
        .as_ref()
        .is_none_or(|ext| ext.chroma_format_idc == 1);
    let crop_unit = field_factor * if chroma_420 { 2 } else { 1 };
    let coded = sps
        .pic_height_in_map_units_minus1
        .checked_add(1)?
        .checked_mul(16 * field_factor)?;
    let cropped = sps.frame_crop_info.as_ref().map_or(Some(0), |crop| {
        crop.frame_crop_top_offset
            .checked_add(crop.frame_crop_bottom_offset)?
            .checked_mul(crop_unit)
    })?;
    u32::try_from(coded.checked_sub(cropped)?)
        .ok()
        .filter(|h| *h > 0)
}
