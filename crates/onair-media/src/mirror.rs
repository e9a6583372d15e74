//! Keeps the local spool of one publish, where its LL-HLS is written: grows the
//! recording playlists (when the broadcast records), and when the media store is not the
//! spool (S3 or another directory) copies finished files into it while they are produced
//! and removes the segments that left the live window once they are copied, so local
//! disk per broadcast stays bounded; what the segmenter removes from the spool (parts,
//! and segments of a broadcast that is not recorded) it removes from the store too, so
//! the store does not keep ~3 parts a second per rendition for good. Segments go before the playlists that name them, so
//! a player never sees a playlist pointing at a segment that is not there yet. Segments
//! never change and are sent once; playlists and the preview image are sent again
//! whenever they change. The spool's size is the `media_spool_bytes` gauge.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use onair_infra::MediaStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::playlist;
use crate::recording::{LIVE_PLAYLIST, RECORDING_PLAYLIST, Recorder};

const POLL: Duration = Duration::from_millis(200);
/// Passes between measures of the spool (a walk of its files).
const MEASURE_EVERY: u64 = 25;
/// Passes between uploads of the recording playlists, which grow with the broadcast and
/// are not played while it is live (the final pass always sends them).
const RECORDING_EVERY: u64 = 50;
/// Segments, parts and initializations, playlists and the preview image (`.tmp` files
/// are still being written).
const MIRRORED: [&str; 5] = ["ts", "m4s", "mp4", "m3u8", "jpg"];

pub(crate) struct Mirror {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Mirror {
    /// Starts keeping `spool` (its renditions are the directories `renditions`),
    /// mirrored to `key_prefix` in `store` unless the store is the spool itself;
    /// `record`: maintain the recording playlists.
    pub(crate) fn start(
        store: &MediaStore,
        (spool, renditions): (PathBuf, Vec<String>),
        key_prefix: String,
        record: bool,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let keeper = Keeper {
            store: (!store.is_spool()).then(|| store.clone()),
            spool,
            renditions,
            key_prefix,
            sent: HashMap::new(),
            listed: HashSet::new(),
            measured: 0,
            passes: 0,
        };
        let task = tokio::spawn(run(keeper, record, stopped));
        Self { stop, task }
    }

    /// Records and sends what is left (ffmpeg's last segment and final playlists), then
    /// stops.
    pub(crate) async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

struct Keeper {
    /// None when the store is the spool: nothing to copy or remove.
    store: Option<MediaStore>,
    spool: PathBuf,
    renditions: Vec<String>,
    key_prefix: String,
    /// Files copied to the store, with the modification time that was copied.
    sent: HashMap<PathBuf, SystemTime>,
    /// Segments seen in a live playlist: once they are no longer listed, they left it.
    listed: HashSet<PathBuf>,
    /// This spool's bytes as last added to the gauge.
    measured: u64,
    passes: u64,
}

async fn run(mut keeper: Keeper, record: bool, mut stopped: watch::Receiver<bool>) {
    let mut recorder = match record {
        true => Some(Recorder::open(&keeper.spool, &keeper.renditions).await),
        false => None,
    };
    loop {
        keeper.pass(recorder.as_mut(), false).await;
        if *stopped.borrow() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stopped.changed() => {}
        }
    }
    keeper.pass(recorder.as_mut(), true).await;
    // The gauge counts the spools of publishes in progress.
    metrics::gauge!("media_spool_bytes").decrement(keeper.measured as f64);
}

impl Keeper {
    /// `last`: the publish ended; everything is sent and measured.
    async fn pass(&mut self, recorder: Option<&mut Recorder>, last: bool) {
        // Recording first: the copy below then sends the segments before the playlists.
        let recording = recorder.is_some();
        if let Some(recorder) = recorder {
            recorder.update().await;
        }
        if let Some(store) = self.store.clone() {
            self.sync(&store, last || self.passes.is_multiple_of(RECORDING_EVERY))
                .await;
            // A recording's segments stay in the store, so their spool copies may go once
            // sent; the segmenter removes an unrecorded broadcast's, later, from both.
            if recording {
                self.prune().await;
            }
        }
        if last || self.passes.is_multiple_of(MEASURE_EVERY) {
            let files = files(&self.spool).await;
            let present: HashSet<&PathBuf> = files.iter().map(|(path, _)| path).collect();
            let gone: Vec<PathBuf> = (self.sent.keys())
                .filter(|path| !present.contains(path))
                .cloned()
                .collect();
            self.forget(gone).await;
            let bytes: u64 = files.iter().map(|(_, m)| m.len()).sum();
            metrics::gauge!("media_spool_bytes").increment(bytes as f64 - self.measured as f64);
            self.measured = bytes;
        }
        self.passes += 1;
    }

    /// Sends what changed: segments (and the preview), then rendition playlists, then
    /// the root's playlists; the recording playlists only with `recording`. Stops at the
    /// first failure, retried on the next pass.
    async fn sync(&mut self, store: &MediaStore, recording: bool) {
        // Playlists are read before segments are listed: ffmpeg (and the recorder) only
        // list a segment once it is in place, so every segment a playlist read here
        // names is listed below and sent before it.
        let mut playlists = Vec::new();
        for (path, modified) in self.changed().await {
            let is_recording = path.file_name().is_some_and(|n| n == RECORDING_PLAYLIST);
            if rank(&self.spool, &path) > 0
                && (recording || !is_recording)
                && let Ok(bytes) = tokio::fs::read(&path).await
            {
                playlists.push((path, modified, bytes));
            }
        }
        for (path, modified) in self.changed().await {
            if rank(&self.spool, &path) == 0
                && let Ok(bytes) = tokio::fs::read(&path).await
                && !self.put(store, path, modified, bytes).await
            {
                return;
            }
        }
        for (path, modified, bytes) in playlists {
            if !self.put(store, path, modified, bytes).await {
                return;
            }
        }
    }

    /// Finished files not sent as they are now, in upload order.
    async fn changed(&self) -> Vec<(PathBuf, SystemTime)> {
        let mut changed: Vec<_> = files(&self.spool)
            .await
            .into_iter()
            .filter(|(path, _)| {
                path.extension()
                    .is_some_and(|e| MIRRORED.iter().any(|m| e == *m))
            })
            .filter_map(|(path, metadata)| Some((path, metadata.modified().ok()?)))
            .filter(|(path, modified)| self.sent.get(path) != Some(modified))
            .collect();
        changed.sort_by_key(|(path, _)| rank(&self.spool, path));
        changed
    }

    /// Removes from the store the sent files their segmenter removed from the spool
    /// (none of its playlists names them any more), in one batch; kept to try again on
    /// the next measure if that fails.
    async fn forget(&mut self, gone: Vec<PathBuf>) {
        if gone.is_empty() {
            return;
        }
        if let Some(store) = &self.store {
            let keys: Vec<String> = gone.iter().filter_map(|path| self.key(path)).collect();
            if let Err(error) = store.delete_many(&keys).await {
                tracing::warn!(files = keys.len(), %error, "removing HLS from the media store failed");
                return;
            }
        }
        for path in gone {
            self.sent.remove(&path);
        }
    }

    /// The store key of a spooled file.
    fn key(&self, path: &Path) -> Option<String> {
        let relative = path.strip_prefix(&self.spool).ok()?.to_str()?;
        Some(format!("{}/{relative}", self.key_prefix))
    }

    /// Copies one file to the store; false if that failed (later files wait, so the
    /// order is kept).
    async fn put(
        &mut self,
        store: &MediaStore,
        path: PathBuf,
        modified: SystemTime,
        bytes: Vec<u8>,
    ) -> bool {
        let Some(key) = self.key(&path) else {
            return true;
        };
        match store.put(&key, bytes.into()).await {
            Ok(()) => {
                self.sent.insert(path, modified);
                true
            }
            Err(error) => {
                tracing::warn!(%key, %error, "mirroring HLS to the media store failed");
                metrics::counter!("media_upload_failures_total").increment(1);
                false
            }
        }
    }

    /// Removes the spool's copies of segments that left the live window and are in the
    /// store (the recording there names them; players of the live window never ask).
    async fn prune(&mut self) {
        for name in &self.renditions {
            let dir = self.spool.join(name);
            let Ok(live) = tokio::fs::read_to_string(dir.join(LIVE_PLAYLIST)).await else {
                continue;
            };
            let window: HashSet<PathBuf> = playlist::segments(&live)
                .into_iter()
                .filter(|s| playlist::is_plain_file_name(&s.uri))
                .map(|s| dir.join(s.uri))
                .collect();
            let left: Vec<PathBuf> = self
                .listed
                .iter()
                .filter(|p| p.parent() == Some(&dir) && !window.contains(*p))
                .filter(|p| self.sent.contains_key(*p))
                .cloned()
                .collect();
            for path in left {
                match tokio::fs::remove_file(&path).await {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                        tracing::warn!(path = %path.display(), %error, "cannot remove a spooled segment");
                    }
                    _ => {
                        self.listed.remove(&path);
                        self.sent.remove(&path);
                    }
                }
            }
            self.listed.extend(window);
        }
    }
}

/// Upload order: segments and images, then rendition playlists, then the playlists at
/// the root (master and recording masters) that name them.
fn rank(spool: &Path, path: &Path) -> u8 {
    match path.extension() {
        Some(e) if e == "m3u8" && path.parent() == Some(spool) => 2,
        Some(e) if e == "m3u8" => 1,
        _ => 0,
    }
}

/// Every file under `dir`, with its metadata.
pub(crate) async fn files(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            continue;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            match entry.metadata().await {
                Ok(metadata) if metadata.is_dir() => pending.push(entry.path()),
                Ok(metadata) => files.push((entry.path(), metadata)),
                Err(_) => {}
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcoder::MASTER_PLAYLIST;

    /// A keeper of `spool`'s rendition `360p`, mirrored to `live/abc` in `store`.
    fn keeper(store: &MediaStore, spool: &Path) -> Keeper {
        Keeper {
            store: Some(store.clone()),
            spool: spool.to_owned(),
            renditions: vec!["360p".into()],
            key_prefix: "live/abc".into(),
            sent: HashMap::new(),
            listed: HashSet::new(),
            measured: 0,
            passes: 0,
        }
    }

    #[tokio::test]
    async fn mirrors_in_order_and_only_changes() {
        let spool = std::env::temp_dir().join(format!("onair-mirror-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(spool.join("360p")).unwrap();
        std::fs::write(spool.join("360p/seg_00000.ts"), "segment").unwrap();
        std::fs::write(spool.join("360p/seg_00001.ts.tmp"), "half").unwrap();
        std::fs::write(spool.join("360p/index.m3u8"), "#EXTM3U").unwrap();
        std::fs::write(spool.join(MASTER_PLAYLIST), "#EXTM3U master").unwrap();
        std::fs::write(spool.join("preview.jpg"), "jpeg").unwrap();
        std::fs::write(spool.join("preview.jpg.tmp"), "half").unwrap();

        let store = MediaStore::open(Some("memory:///"), &spool).unwrap();
        let keeper = keeper(&store, &spool);
        let ranks: Vec<u8> = keeper
            .changed()
            .await
            .iter()
            .map(|(p, _)| rank(&spool, p))
            .collect();
        assert_eq!(ranks, [0, 0, 1, 2]);

        let kept = (spool.clone(), vec!["360p".into()]);
        let mirror = Mirror::start(&store, kept, "live/abc".into(), false);
        mirror.finish().await;
        assert_eq!(
            store
                .get("live/abc/360p/seg_00000.ts")
                .await
                .unwrap()
                .as_deref(),
            Some(&b"segment"[..])
        );
        assert_eq!(
            store.get("live/abc/master.m3u8").await.unwrap().as_deref(),
            Some(&b"#EXTM3U master"[..])
        );
        assert_eq!(
            store.get("live/abc/preview.jpg").await.unwrap().as_deref(),
            Some(&b"jpeg"[..])
        );
        assert_eq!(
            store.get("live/abc/360p/seg_00001.ts.tmp").await.unwrap(),
            None
        );
        std::fs::remove_dir_all(&spool).unwrap();
    }

    #[tokio::test]
    async fn what_the_segmenter_removes_leaves_the_store_too() {
        let spool = tempfile::tempdir().unwrap();
        let dir = spool.path().join("360p");
        std::fs::create_dir_all(&dir).unwrap();
        let part = dir.join("part_00000_abcdef_0.m4s");
        std::fs::write(&part, "part").unwrap();
        std::fs::write(dir.join("seg_00000.m4s"), "segment").unwrap();
        let store = MediaStore::open(Some("memory:///"), spool.path()).unwrap();
        let mut keeper = keeper(&store, spool.path());
        keeper.pass(None, false).await;
        let part_key = "live/abc/360p/part_00000_abcdef_0.m4s";
        assert!(store.get(part_key).await.unwrap().is_some());

        std::fs::remove_file(&part).unwrap();
        keeper.pass(None, true).await;
        assert_eq!(store.get(part_key).await.unwrap(), None);
        let segment = store.get("live/abc/360p/seg_00000.m4s").await.unwrap();
        assert!(segment.is_some(), "what is still spooled stays");
    }
}
