//! What OnAir reads from H.264 itself, from a sequence parameter set: the picture size
//! (the height sets the rendition ladder, both go in the master playlist) and the RFC
//! 6381 codec name players check before choosing a rendition, and the declared frame
//! rate.

/// A sequence parameter set's picture and codec.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sequence {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// `avc1.PPCCLL`: profile, constraint flags and level (RFC 6381 §3.3).
    pub(crate) codec: String,
    /// The frame rate the encoder declares (VUI timing), if it does and it is plausible.
    pub(crate) frame_rate: Option<f64>,
}

/// Parses a sequence parameter set NAL unit (header byte included, emulation prevention
/// bytes still in); None if it does not parse or describes no picture.
pub(crate) fn sequence(nal: &[u8]) -> Option<Sequence> {
    let sps = scuffle_h264::Sps::parse_with_emulation_prevention(nal).ok()?;
    // H.264 §7.4.2.1.1 and Table 6-1. The crate's own width() and height() assume 4:2:0
    // and do unchecked arithmetic on values the publisher controls.
    let field_factor = if sps.mb_adaptive_frame_field_flag.is_none() {
        1
    } else {
        2
    };
    // Without the extension the chroma format is 4:2:0.
    let chroma_format = sps.ext.as_ref().map_or(1, |ext| ext.chroma_format_idc);
    let (crop_x, crop_y) = match chroma_format {
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let crop = sps.frame_crop_info.as_ref();
    let coded_width = sps
        .pic_width_in_mbs_minus1
        .checked_add(1)?
        .checked_mul(16)?;
    let coded_height = sps
        .pic_height_in_map_units_minus1
        .checked_add(1)?
        .checked_mul(16 * field_factor)?;
    let cropped_x = crop.map_or(Some(0), |c| {
        c.frame_crop_left_offset
            .checked_add(c.frame_crop_right_offset)?
            .checked_mul(crop_x)
    })?;
    let cropped_y = crop.map_or(Some(0), |c| {
        c.frame_crop_top_offset
            .checked_add(c.frame_crop_bottom_offset)?
            .checked_mul(crop_y)
    })?;
    let dimension = |coded: u64, cropped: u64| {
        u32::try_from(coded.checked_sub(cropped)?)
            .ok()
            .filter(|d| *d > 0)
    };
    let constraints = [
        sps.constraint_set0_flag,
        sps.constraint_set1_flag,
        sps.constraint_set2_flag,
        sps.constraint_set3_flag,
        sps.constraint_set4_flag,
        sps.constraint_set5_flag,
    ]
    .iter()
    .enumerate()
    .fold(0u8, |byte, (bit, set)| byte | (u8::from(*set) << (7 - bit)));
    Some(Sequence {
        width: dimension(coded_width, cropped_x)?,
        height: dimension(coded_height, cropped_y)?,
        codec: format!(
            "avc1.{:02X}{constraints:02X}{:02X}",
            sps.profile_idc, sps.level_idc
        ),
        frame_rate: sps.frame_rate().filter(|rate| (1.0..=240.0).contains(rate)),
    })
}
