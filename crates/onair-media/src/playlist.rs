//! Just enough of HLS media playlists (RFC 8216 §4.3.2) for what we read: ffmpeg's live
//! playlists and our recordings — each segment's duration, file name and whether a
//! discontinuity precedes it.

/// A media segment as a playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segment {
    pub(crate) seconds: f64,
    pub(crate) uri: String,
    /// `#EXT-X-DISCONTINUITY` precedes it: its timestamps do not follow the previous one.
    pub(crate) discontinuity: bool,
}

/// The segments of a media playlist, in order. Tags we do not use are skipped.
pub(crate) fn segments(playlist: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let (mut seconds, mut discontinuity) = (None, false);
    for line in playlist.lines().map(str::trim) {
        if let Some(info) = line.strip_prefix("#EXTINF:") {
            seconds = info.split(',').next().and_then(|s| s.trim().parse().ok());
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            // A URI without a duration is malformed; it is skipped rather than guessed.
            if let Some(seconds) = seconds.take() {
                segments.push(Segment {
                    seconds,
                    uri: line.to_owned(),
                    discontinuity,
                });
            }
            discontinuity = false;
        }
    }
    segments
}

/// The playlist's length: the sum of its segments' durations, in seconds.
pub fn playlist_duration(playlist: &str) -> f64 {
    segments(playlist).iter().map(|s| s.seconds).sum()
}

/// An EVENT playlist of `segments` (the recording while it grows; no ENDLIST, which the
/// server adds when it serves an ended broadcast).
pub(crate) fn render_event(segments: &[Segment]) -> String {
    render("EVENT", segments)
}

/// A finished (VOD) playlist of `segments`, closed by an ENDLIST.
pub(crate) fn render_vod(segments: &[Segment]) -> String {
    render("VOD", segments) + "#EXT-X-ENDLIST\n"
}

fn render(kind: &str, segments: &[Segment]) -> String {
    let target = segments
        .iter()
        .map(|s| s.seconds.ceil() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-PLAYLIST-TYPE:{kind}\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    );
    for segment in segments {
        if segment.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        out.push_str(&format!(
            "#EXTINF:{:.6},\n{}\n",
            segment.seconds, segment.uri
        ));
    }
    out
}

/// A segment URI that names a file beside its playlist (no directories, no `..`, no
/// scheme), so a playlist can never make us read or write elsewhere.
pub(crate) fn is_plain_file_name(uri: &str) -> bool {
    !uri.is_empty() && uri != "." && uri != ".." && !uri.contains(['/', '\\', ':', '?', '#'])
}

/// Writes `contents` to `path` through a temporary file and a rename, so a reader (a
/// player, the mirror) never sees half a file.
pub(crate) async fn write_atomically(
    path: &std::path::Path,
    contents: &str,
) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    tokio::fs::write(&temporary, contents).await?;
    tokio::fs::rename(&temporary, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_segments() {
        let live = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:4\n\
                    #EXTINF:1.000000,\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z\nseg_00004.ts\n\
                    #EXT-X-DISCONTINUITY\n#EXTINF:0.500000,\nseg_00005.ts\n";
        let parsed = segments(live);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].uri, "seg_00004.ts");
        assert!(!parsed[0].discontinuity && parsed[1].discontinuity);
        assert!((playlist_duration(live) - 1.5).abs() < 1e-9);
        let rendered = render_event(&parsed);
        assert!(rendered.contains("#EXT-X-PLAYLIST-TYPE:EVENT"));
        assert!(!rendered.contains("ENDLIST"));
        assert_eq!(segments(&rendered), parsed);
        let closed = render_vod(&parsed);
        assert!(closed.contains("#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:1\n"));
        assert!(
            closed.ends_with("seg_00005.ts\n#EXT-X-ENDLIST\n"),
            "{closed}"
        );
        assert_eq!(segments(&closed), parsed);
        assert_eq!(playlist_duration("#EXTM3U\n"), 0.0);
        assert!(is_plain_file_name("seg_00001.ts"));
        for bad in ["../x.ts", "/etc/passwd", "http://x/y.ts", "", ".."] {
            assert!(!is_plain_file_name(bad), "{bad}");
        }
    }
}
