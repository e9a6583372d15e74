//! Copies a broadcast's HLS from the local spool, where ffmpeg writes it, into the media
//! store (S3 or another directory) while it is produced. Segments go before the
//! playlists that name them, so a player never sees a playlist pointing at a segment
//! that is not there yet. Segments never change and are sent once; playlists and the
//! preview image are sent again whenever they change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use onair_infra::MediaStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::transcoder::MASTER_PLAYLIST;

const POLL: Duration = Duration::from_millis(200);
/// Segments, playlists and the preview image (ffmpeg's `.tmp` files are still being written).
const MIRRORED: [&str; 3] = ["ts", "m3u8", "jpg"];

pub(crate) struct Mirror {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Mirror {
    /// Starts mirroring `spool` to `key_prefix` in `store`; None when the store is the
    /// spool itself.
    pub(crate) fn start(store: &MediaStore, spool: PathBuf, key_prefix: String) -> Option<Self> {
        if store.is_spool() {
            return None;
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(store.clone(), spool, key_prefix, stopped));
        Some(Self { stop, task })
    }

    /// Sends what is left (ffmpeg's last segment and final playlists), then stops.
    pub(crate) async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(
    store: MediaStore,
    spool: PathBuf,
    key_prefix: String,
    mut stopped: watch::Receiver<bool>,
) {
    let mut sent = HashMap::new();
    loop {
        sync(&store, &spool, &key_prefix, &mut sent).await;
        if *stopped.borrow() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stopped.changed() => {}
        }
    }
    sync(&store, &spool, &key_prefix, &mut sent).await;
}

/// Upload order: segments, then rendition playlists, then the master playlist.
fn rank(path: &Path) -> u8 {
    match path.file_name().and_then(|n| n.to_str()) {
        Some(MASTER_PLAYLIST) => 2,
        Some(name) if name.ends_with(".m3u8") => 1,
        _ => 0,
    }
}

/// Finished files under `dir`.
async fn finished_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            continue;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            match entry.file_type().await {
                Ok(kind) if kind.is_dir() => pending.push(path),
                Ok(_)
                    if path
                        .extension()
                        .is_some_and(|e| MIRRORED.iter().any(|m| e == *m)) =>
                {
                    files.push(path)
                }
                _ => {}
            }
        }
    }
    files.sort_by_key(|p| rank(p));
    files
}

async fn sync(
    store: &MediaStore,
    spool: &Path,
    key_prefix: &str,
    sent: &mut HashMap<PathBuf, SystemTime>,
) {
    for path in finished_files(spool).await {
        let Ok(modified) = tokio::fs::metadata(&path).await.and_then(|m| m.modified()) else {
            continue;
        };
        if sent.get(&path) == Some(&modified) {
            continue;
        }
        let Some(relative) = path.strip_prefix(spool).ok().and_then(|r| r.to_str()) else {
            continue;
        };
        let key = format!("{key_prefix}/{relative}");
        let uploaded = match tokio::fs::read(&path).await {
            Ok(bytes) => store
                .put(&key, bytes.into())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match uploaded {
            Ok(()) => {
                sent.insert(path, modified);
            }
            Err(error) => {
                // Retried on the next pass; later files wait so order is kept.
                tracing::warn!(%key, %error, "mirroring HLS to the media store failed");
                metrics::counter!("media_upload_failures_total").increment(1);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let files = finished_files(&spool).await;
        let ranks: Vec<u8> = files.iter().map(|p| rank(p)).collect();
        assert_eq!(ranks, [0, 0, 1, 2]);

        let store = MediaStore::open(Some("memory:///"), &spool).unwrap();
        let mirror =
            Mirror::start(&store, spool.clone(), "live/abc".into()).expect("not the spool");
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
}
