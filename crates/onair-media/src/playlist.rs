//! Just enough of HLS media playlists (RFC 8216 §4.3.2) for what we read and write: the
//! live playlists and our recordings — each segment's duration, file name, whether a
//! discontinuity precedes it and the initialization (`#EXT-X-MAP`) it needs.

/// A media segment as a playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segment {
    pub(crate) seconds: f64,
    pub(crate) uri: String,
    /// `#EXT-X-DISCONTINUITY` precedes it: its timestamps do not follow the previous one.
    pub(crate) discontinuity: bool,
    /// The `#EXT-X-MAP` URI in effect for it (fMP4 segments need their initialization).
    pub(crate) map: Option<String>,
}

/// `#EXT-X-MAP:URI="…"`'s URI.
const MAP: &str = "#EXT-X-MAP:URI=\"";

/// The segments of a media playlist, in order. Tags we do not use are skipped.
pub(crate) fn segments(playlist: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let (mut seconds, mut discontinuity, mut map) = (None, false, None);
    for line in playlist.lines().map(str::trim) {
        if let Some(attributes) = line.strip_prefix(MAP) {
            map = attributes.split_once('"').map(|(uri, _)| uri.to_owned());
        } else if let Some(info) = line.strip_prefix("#EXTINF:") {
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
                    map: map.clone(),
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
        // RFC 8216 §4.3.3.1: each duration, rounded to the nearest integer, fits it.
        .map(|s| s.seconds.round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-PLAYLIST-TYPE:{kind}\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    );
    let mut map = None;
    for segment in segments {
        if segment.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if segment.map.is_some() && segment.map != map {
            map.clone_from(&segment.map);
            out.push_str(&map_tag(map.as_deref().unwrap_or_default()));
        }
        out.push_str(&format!(
            "#EXTINF:{:.6},\n{}\n",
            segment.seconds, segment.uri
        ));
    }
    out
}

/// The `#EXT-X-MAP` line naming initialization `uri`.
pub(crate) fn map_tag(uri: &str) -> String {
    format!("{MAP}{uri}\"\n")
}

/// A playlist's `#EXT-X-MEDIA-SEQUENCE` (0 when absent).
pub(crate) fn media_sequence(playlist: &str) -> u64 {
    tag_number(playlist, "#EXT-X-MEDIA-SEQUENCE:")
}

/// A playlist's `#EXT-X-DISCONTINUITY-SEQUENCE` (0 when absent).
pub(crate) fn discontinuity_sequence(playlist: &str) -> u64 {
    tag_number(playlist, "#EXT-X-DISCONTINUITY-SEQUENCE:")
}

fn tag_number(playlist: &str, tag: &str) -> u64 {
    playlist
        .lines()
        .find_map(|line| line.trim().strip_prefix(tag)?.parse().ok())
        .unwrap_or(0)
}

/// Where a live LL-HLS playlist stands, for a blocking reload (RFC 8216bis §6.2.5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEdge {
    /// The media sequence number of the segment being cut (after the last whole one).
    pub open_segment: u64,
    /// Parts of that segment listed so far.
    pub open_parts: u64,
    /// The next part's URI, when more is coming (`#EXT-X-PRELOAD-HINT`).
    pub hinted: Option<String>,
    /// `#EXT-X-TARGETDURATION`, in seconds.
    pub target_seconds: u64,
}

impl LiveEdge {
    /// Reads a live playlist.
    pub fn of(playlist: &str) -> Self {
        let (mut whole, mut open_parts, mut hinted) = (0u64, 0u64, None);
        for line in playlist.lines().map(str::trim) {
            if line.starts_with("#EXT-X-PART:") {
                open_parts += 1;
            } else if let Some(hint) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
                hinted = hint
                    .split_once("URI=\"")
                    .and_then(|(_, uri)| Some(uri.split_once('"')?.0.to_owned()));
            } else if !line.is_empty() && !line.starts_with('#') {
                // A segment's URI closes it; the parts listed so far were its own.
                whole += 1;
                open_parts = 0;
            }
        }
        Self {
            open_segment: media_sequence(playlist) + whole,
            open_parts,
            hinted,
            target_seconds: tag_number(playlist, "#EXT-X-TARGETDURATION:").max(1),
        }
    }

    /// More is coming (the playlist hints the next part).
    pub fn growing(&self) -> bool {
        self.hinted.is_some()
    }

    /// Whether it holds segment `msn` whole, or with `part`, that part of it (or later).
    pub fn has(&self, msn: u64, part: Option<u64>) -> bool {
        match part {
            None => msn < self.open_segment,
            Some(part) => {
                msn < self.open_segment || (msn == self.open_segment && part < self.open_parts)
            }
        }
    }
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
    contents: impl AsRef<[u8]>,
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
        assert_eq!((media_sequence(live), discontinuity_sequence(live)), (4, 0));
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

        let growing = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n\
                       #EXT-X-PART:DURATION=0.3,URI=\"p1.m4s\"\n#EXTINF:1.0,\nseg_00007.m4s\n\
                       #EXT-X-PART:DURATION=0.3,URI=\"p2.m4s\"\n\
                       #EXT-X-PART:DURATION=0.3,URI=\"p3.m4s\"\n\
                       #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p4.m4s\"\n";
        let edge = LiveEdge::of(growing);
        assert_eq!(
            (edge.open_segment, edge.open_parts, edge.growing()),
            (8, 2, true)
        );
        assert!(edge.has(7, None) && edge.has(7, Some(5)) && edge.has(8, Some(1)));
        assert!(!edge.has(8, None) && !edge.has(8, Some(2)) && !edge.has(9, Some(0)));
        assert!(!LiveEdge::of(live).growing());

        // fMP4: each segment keeps the initialization in effect; a resume brings its own.
        let fragmented = "#EXTM3U\n#EXT-X-MAP:URI=\"init_00000.mp4\"\n#EXTINF:1.0,\nseg_00000.m4s\n\
                          #EXT-X-PART:DURATION=0.333,URI=\"part_00000_00003.m4s\"\n\
                          #EXTINF:1.0,\nseg_00001.m4s\n#EXT-X-DISCONTINUITY\n\
                          #EXT-X-MAP:URI=\"init_00002.mp4\"\n#EXTINF:1.0,\nseg_00002.m4s\n";
        let parsed = segments(fragmented);
        let maps: Vec<_> = parsed.iter().map(|s| s.map.as_deref()).collect();
        assert_eq!(
            maps,
            [
                Some("init_00000.mp4"),
                Some("init_00000.mp4"),
                Some("init_00002.mp4")
            ]
        );
        let rendered = render_event(&parsed);
        assert_eq!(rendered.matches("#EXT-X-MAP").count(), 2, "{rendered}");
        assert!(rendered.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init_00002.mp4\"\n"));
        assert_eq!(segments(&rendered), parsed);
        for bad in ["../x.ts", "/etc/passwd", "http://x/y.ts", "", ".."] {
            assert!(!is_plain_file_name(bad), "{bad}");
        }
    }
}
