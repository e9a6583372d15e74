//! The rendition ladder, shared by the live transcoder and the VOD builder: the source
//! is always copied, and each configured height below it is encoded — never one above
//! it (an upscale costs CPU and bandwidth and adds no picture).

/// The copied source's rendition name; encoded rungs are named `<height>p`.
pub(crate) const SOURCE: &str = "source";

/// Heights to encode below a source `height` pixels tall, tallest first: the ladder's
/// rungs under it, or half the source when it is at or below the smallest rung, so a
/// viewer on a weak connection always has a lower rendition.
pub(crate) fn rungs(ladder: &[u32], height: u32) -> Vec<u32> {
    let even = |h: u32| (h & !1).max(2);
    let mut rungs: Vec<u32> = ladder
        .iter()
        .map(|h| even(*h))
        .filter(|h| *h < height)
        .collect();
    rungs.sort_unstable_by(|a, b| b.cmp(a));
    rungs.dedup();
    if rungs.is_empty() {
        rungs.push(even(height.div_ceil(2)));
    }
    rungs
}

/// The rendition names for `rungs`: the source first, then each rung.
pub(crate) fn names(rungs: &[u32]) -> Vec<String> {
    std::iter::once(SOURCE.to_owned())
        .chain(rungs.iter().map(|h| format!("{h}p")))
        .collect()
}

/// A rung's peak video bitrate in kb/s, by picture size: 720p ≈ 3 Mb/s, 480p ≈ 1.4,
/// 360p ≈ 0.8 (what the common streaming ladders use for 30 fps H.264).
pub(crate) fn max_kbps(height: u32) -> u32 {
    height * height / 170
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_never_upscale_and_always_have_a_lower_rendition() {
        let ladder = [720, 480, 360];
        assert_eq!(rungs(&ladder, 1080), [720, 480, 360]);
        assert_eq!(rungs(&ladder, 720), [480, 360]);
        assert_eq!(rungs(&ladder, 400), [360]);
        assert_eq!(rungs(&ladder, 360), [180]);
        assert_eq!(rungs(&ladder, 250), [124]);
        assert_eq!(rungs(&[361, 360], 1080), [360]);
        assert_eq!(names(&[480, 360]), ["source", "480p", "360p"]);
        assert_eq!(max_kbps(720), 3049);
    }
}
