//! Where HLS, archives, clips and uploaded avatars are stored and served from: an object
//! store (the `object_store` crate) — a local directory by default, S3 or any
//! S3-compatible service in scale-out. ffmpeg always writes HLS to a local spool
//! directory; when the store is not that directory, the ingest mirrors finished files
//! into it.
//!
//! S3 is an outbound dependency like any other: every request has a deadline and a
//! bounded number of retries ([`S3Limits`]), and a circuit breaker refuses calls at once
//! while the store keeps failing ([`MediaStoreError::CircuitOpen`]).

use std::cmp::Reverse;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::breaker::{BreakerOpen, CircuitBreaker};
use crate::s3::S3Options;

/// Files above this size are uploaded in parts of this size (S3 wants at least 5 MiB),
/// so a 1 GB recording never sits in memory.
const PART_BYTES: usize = 8 << 20;
/// Parts of one file, and small files of one directory, in flight at once.
const PARALLEL_UPLOADS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum MediaStoreError {
    #[error("OBJECT_STORE_URL: {0}")]
    Config(String),
    #[error("invalid media key {0:?}")]
    InvalidKey(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    CircuitOpen(#[from] BreakerOpen),
}

impl MediaStoreError {
    /// What the error says about the store's health, for its breaker: `Some(false)` when
    /// the store did not answer or answered a server error (object_store's `Generic`,
    /// after its retries), `Some(true)` when it answered about the object (not found, a
    /// precondition, a refusal), `None` when the store was never asked or the failure
    /// is ours (a bad key, a local file).
    fn store_answered(&self) -> Option<bool> {
        use object_store::Error as E;
        match self {
            Self::Store(E::Generic { .. }) => Some(false),
            Self::Store(
                E::NotFound { .. }
                | E::AlreadyExists { .. }
                | E::Precondition { .. }
                | E::NotModified { .. }
                | E::PermissionDenied { .. }
                | E::Unauthenticated { .. },
            ) => Some(true),
            _ => None,
        }
    }
}

fn io_error(path: &FsPath) -> impl FnOnce(std::io::Error) -> MediaStoreError + '_ {
    move |source| MediaStoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An object under a prefix, its key relative to the store's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub size: u64,
}

#[derive(Clone)]
pub struct MediaStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// True when the store is the spool directory itself: nothing to copy.
    is_spool: bool,
    /// Remote stores only: a local directory fails for reasons a breaker cannot help.
    breaker: Option<Arc<CircuitBreaker>>,
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStore")
            .field("store", &self.store)
            .field("prefix", &self.prefix)
            .field("is_spool", &self.is_spool)
            .finish_non_exhaustive()
    }
}

impl MediaStore {
    /// `url`: none for the spool directory itself; `file:///dir`, `s3://bucket/prefix`
    /// (credentials and endpoint from the standard `AWS_*` variables) or `memory://`.
    pub fn open(url: Option<&str>, spool: &FsPath) -> Result<Self, MediaStoreError> {
        Self::open_with(url, spool, &S3Options::default())
    }

    /// As [`MediaStore::open`], with S3 settings that override the `AWS_*` variables.
    pub fn open_with(
        url: Option<&str>,
        spool: &FsPath,
        s3: &S3Options,
    ) -> Result<Self, MediaStoreError> {
        let Some(raw) = url else {
            return Ok(Self {
                store: local(spool)?,
                prefix: Path::default(),
                is_spool: true,
                breaker: None,
            });
        };
        let url =
            url::Url::parse(raw).map_err(|e| MediaStoreError::Config(format!("{raw}: {e}")))?;
        let prefix =
            Path::parse(url.path().trim_start_matches('/')).map_err(object_store::Error::from)?;
        let mut breaker = None;
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                return Ok(Self {
                    store: local(FsPath::new(url.path()))?,
                    prefix: Path::default(),
                    is_spool: false,
                    breaker: None,
                });
            }
            "s3" => {
                let bucket = url.host_str().unwrap_or_default();
                breaker = Some(CircuitBreaker::new("s3", bucket, s3.limits.breaker));
                Arc::new(s3.builder(raw).build()?)
            }
            "memory" => Arc::new(InMemory::new()),
            other => {
                return Err(MediaStoreError::Config(format!(
                    "unsupported scheme {other}: use file, s3 or memory"
                )));
            }
        };
        Ok(Self {
            store,
            prefix,
            is_spool: false,
            breaker,
        })
    }

    /// Runs one call to the store through its breaker: refused at once while it is
    /// open, and its outcome counted.
    async fn guarded<T>(
        &self,
        call: impl Future<Output = Result<T, MediaStoreError>>,
    ) -> Result<T, MediaStoreError> {
        let Some(breaker) = &self.breaker else {
            return call.await;
        };
        let permit = breaker.try_call()?;
        let result = call.await;
        match result
            .as_ref()
            .map_or_else(|e| e.store_answered(), |_| Some(true))
        {
            Some(true) => permit.success(),
            Some(false) => permit.failure(),
            None => drop(permit),
        }
        result
    }

    /// Whether files written to the spool are already in the store.
    pub fn is_spool(&self) -> bool {
        self.is_spool
    }

    fn location(&self, key: &str) -> Result<Path, MediaStoreError> {
        let key = Path::parse(key).map_err(object_store::Error::from)?;
        Ok(self.prefix.parts().chain(key.parts()).collect())
    }

    /// A prefix to list or delete: never the whole store.
    fn prefix_location(&self, prefix: &str) -> Result<Path, MediaStoreError> {
        let location = Path::parse(prefix).map_err(object_store::Error::from)?;
        if location.parts().next().is_none() {
            return Err(MediaStoreError::InvalidKey(prefix.to_owned()));
        }
        self.location(prefix)
    }

    /// The key of a stored location, relative to the store's root.
    fn key_of(&self, location: &Path) -> String {
        match location.prefix_match(&self.prefix) {
            Some(parts) => parts.collect::<Path>().to_string(),
            None => location.to_string(),
        }
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), MediaStoreError> {
        self.guarded(async {
            self.store
                .put(&self.location(key)?, PutPayload::from(bytes))
                .await?;
            Ok(())
        })
        .await
    }

    /// Uploads a local file, streamed in parts when large; returns its size.
    pub async fn put_file(&self, key: &str, path: &FsPath) -> Result<u64, MediaStoreError> {
        self.guarded(async {
            let location = self.location(key)?;
            let mut file = tokio::fs::File::open(path).await.map_err(io_error(path))?;
            let size = file.metadata().await.map_err(io_error(path))?.len();
            if size <= PART_BYTES as u64 {
                let mut bytes = Vec::with_capacity(size as usize);
                file.read_to_end(&mut bytes).await.map_err(io_error(path))?;
                self.store.put(&location, bytes.into()).await?;
                return Ok(size);
            }
            let mut upload = WriteMultipart::new_with_chunk_size(
                self.store.put_multipart(&location).await?,
                PART_BYTES,
            );
            let mut buffer = vec![0; 1 << 20];
            loop {
                let read = match file.read(&mut buffer).await {
                    Ok(0) => break,
                    Ok(read) => read,
                    Err(source) => {
                        // The parts sent so far are dropped, not left to bill.
                        let _ = upload.abort().await;
                        return Err(io_error(path)(source));
                    }
                };
                if let Err(error) = upload.wait_for_capacity(PARALLEL_UPLOADS).await {
                    let _ = upload.abort().await;
                    return Err(error.into());
                }
                upload.write(&buffer[..read]);
            }
            // `finish` aborts the upload itself when a part or the completion fails.
            upload.finish().await?;
            Ok(size)
        })
        .await
    }

    /// Removes the object; one that is not there is no error.
    pub async fn delete(&self, key: &str) -> Result<(), MediaStoreError> {
        self.guarded(async {
            match self.store.delete(&self.location(key)?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Removes every object under `prefix` (whole path segments: `vod/a` is not a prefix
    /// of `vod/ab/x`) and returns how many; nothing there is no error, so a retried
    /// delete succeeds. The empty prefix (the whole store) is refused.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, MediaStoreError> {
        self.guarded(async {
            let prefix = self.prefix_location(prefix)?;
            // The whole listing (paged through by object_store) first: deleting while a local
            // directory walk is under way would pull directories from under it.
            let listed: Vec<Result<Path, object_store::Error>> = self
                .store
                .list(Some(&prefix))
                .map_ok(|object| object.location)
                .try_collect::<Vec<_>>()
                .await?
                .into_iter()
                .map(Ok)
                .collect();
            self.delete_locations(listed).await
        })
        .await
    }

    /// Removes the objects at `keys` (those already gone too), in batches.
    pub async fn delete_many(&self, keys: &[String]) -> Result<(), MediaStoreError> {
        self.guarded(async {
            let locations = keys
                .iter()
                .map(|key| self.location(key))
                .collect::<Result<Vec<_>, _>>()?;
            self.delete_locations(locations.into_iter().map(Ok).collect())
                .await
                .map(drop)
        })
        .await
    }

    /// How many of `locations` were deleted (S3: in batches of up to 1000 keys).
    async fn delete_locations(
        &self,
        locations: Vec<Result<Path, object_store::Error>>,
    ) -> Result<u64, MediaStoreError> {
        let mut deleted = self
            .store
            .delete_stream(futures_util::stream::iter(locations).boxed());
        let mut count = 0;
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) => count += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(count)
    }

    /// Every object under `prefix`, in no particular order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, MediaStoreError> {
        self.guarded(async {
            let prefix = self.prefix_location(prefix)?;
            let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
            Ok(objects
                .into_iter()
                .map(|object| StoredObject {
                    key: self.key_of(&object.location),
                    size: object.size,
                })
                .collect())
        })
        .await
    }

    /// Bytes stored under `prefix` (storage accounting).
    pub async fn size_of_prefix(&self, prefix: &str) -> Result<u64, MediaStoreError> {
        Ok(self.list(prefix).await?.iter().map(|o| o.size).sum())
    }

    /// The object's bytes, or None if there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, MediaStoreError> {
        self.guarded(async {
            match self.store.get(&self.location(key)?).await {
                Ok(result) => Ok(Some(result.bytes().await?)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Copies every object under `prefix` to `dir` (`prefix/a/b` → `dir/a/b`), streamed;
    /// returns the bytes written.
    pub async fn download_prefix(
        &self,
        prefix: &str,
        dir: &FsPath,
    ) -> Result<u64, MediaStoreError> {
        self.guarded(async {
            let base = self.prefix_location(prefix)?;
            let objects: Vec<_> = self.store.list(Some(&base)).try_collect().await?;
            let mut total = 0;
            for object in objects {
                let Some(parts) = object.location.prefix_match(&base) else {
                    continue;
                };
                let target = parts.fold(dir.to_owned(), |path, part| path.join(part.as_ref()));
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(io_error(parent))?;
                }
                let mut file = tokio::fs::File::create(&target)
                    .await
                    .map_err(io_error(&target))?;
                let mut body = self.store.get(&object.location).await?.into_stream();
                while let Some(chunk) = body.try_next().await? {
                    file.write_all(&chunk).await.map_err(io_error(&target))?;
                    total += chunk.len() as u64;
                }
                file.flush().await.map_err(io_error(&target))?;
            }
            Ok(total)
        })
        .await
    }

    /// Publishes a local directory under `prefix` so that a reader never sees a playlist
    /// naming what is not there yet: every other file first (segments, images, MP4s),
    /// then playlists, the deepest first (`<rung>/index.m3u8` before `master.m3u8`).
    /// Returns the bytes uploaded.
    pub async fn upload_dir(&self, dir: &FsPath, prefix: &str) -> Result<u64, MediaStoreError> {
        self.prefix_location(prefix)?;
        let mut files = files_under(dir).await?;
        files.sort_by_key(|file| file.rank());
        let mut total = 0;
        for batch in files.chunk_by(|a, b| a.rank() == b.rank()) {
            // Owned items: a closure over borrowed ones makes the future unprovably
            // `Send` inside callers' boxed futures (rust-lang/rust#102211).
            let uploads: Vec<(String, PathBuf)> = batch
                .iter()
                .map(|file| (format!("{prefix}/{}", file.key), file.path.clone()))
                .collect();
            let sizes: Vec<u64> = futures_util::stream::iter(uploads)
                .map(|(key, path)| async move { self.put_file(&key, &path).await })
                .buffer_unordered(PARALLEL_UPLOADS)
                .try_collect()
                .await?;
            total += sizes.iter().sum::<u64>();
        }
        Ok(total)
    }
}

/// A local directory as an object store; deleting its last file removes the emptied
/// directories too (a deleted broadcast leaves nothing behind).
fn local(dir: &FsPath) -> Result<Arc<dyn ObjectStore>, MediaStoreError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    Ok(Arc::new(
        LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true),
    ))
}

/// A file of a directory being published, and its key relative to the directory.
struct LocalFile {
    path: PathBuf,
    key: String,
    depth: usize,
}

impl LocalFile {
    /// Upload order: non-playlists (0), then playlists from the deepest up.
    fn rank(&self) -> (bool, Reverse<usize>) {
        let playlist = self.key.ends_with(".m3u8");
        (playlist, Reverse(if playlist { self.depth } else { 0 }))
    }
}

async fn files_under(dir: &FsPath) -> Result<Vec<LocalFile>, MediaStoreError> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_owned(), String::new(), 0)];
    while let Some((path, key, depth)) = pending.pop() {
        let mut entries = tokio::fs::read_dir(&path).await.map_err(io_error(&path))?;
        while let Some(entry) = entries.next_entry().await.map_err(io_error(&path))? {
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| MediaStoreError::InvalidKey(name.to_string_lossy().into()))?;
            let child_key = if key.is_empty() {
                name.to_owned()
            } else {
                format!("{key}/{name}")
            };
            let kind = entry.file_type().await.map_err(io_error(&entry.path()))?;
            if kind.is_dir() {
                pending.push((entry.path(), child_key, depth + 1));
            } else if kind.is_file() {
                files.push(LocalFile {
                    path: entry.path(),
                    key: child_key,
                    depth,
                });
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_published_media_first_master_last() {
        let file = |key: &str, depth| LocalFile {
            path: PathBuf::new(),
            key: key.into(),
            depth,
        };
        let mut files = [
            file("master.m3u8", 0),
            file("360p/index.m3u8", 1),
            file("thumbnail.jpg", 0),
            file("360p/seg_00000.ts", 1),
        ];
        files.sort_by_key(|f| f.rank());
        let order: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            order,
            [
                "thumbnail.jpg",
                "360p/seg_00000.ts",
                "360p/index.m3u8",
                "master.m3u8"
            ]
        );
    }

    #[tokio::test]
    async fn spool_and_memory_stores() {
        let dir = std::env::temp_dir().join(format!("onair-media-store-{}", uuid::Uuid::new_v4()));
        let spool = MediaStore::open(None, &dir).unwrap();
        assert!(spool.is_spool());
        std::fs::create_dir_all(dir.join("live/x")).unwrap();
        std::fs::write(dir.join("live/x/master.m3u8"), "#EXTM3U").unwrap();
        assert_eq!(
            spool.get("live/x/master.m3u8").await.unwrap().as_deref(),
            Some(&b"#EXTM3U"[..])
        );
        assert_eq!(spool.get("live/x/none.ts").await.unwrap(), None);
        spool.delete("live/x/master.m3u8").await.unwrap();
        assert_eq!(spool.get("live/x/master.m3u8").await.unwrap(), None);
        spool.delete("live/x/master.m3u8").await.unwrap();
        // The emptied directories went with the last file.
        assert!(!dir.join("live").exists());
        std::fs::remove_dir_all(&dir).unwrap();

        let memory = MediaStore::open(Some("memory:///media"), &dir).unwrap();
        assert!(!memory.is_spool());
        memory
            .put("live/y/seg.ts", Bytes::from_static(b"ts"))
            .await
            .unwrap();
        assert_eq!(
            memory.get("live/y/seg.ts").await.unwrap().as_deref(),
            Some(&b"ts"[..])
        );
        memory.delete("live/y/seg.ts").await.unwrap();
        assert_eq!(memory.get("live/y/seg.ts").await.unwrap(), None);
        memory.delete("live/y/seg.ts").await.unwrap();
        assert!(MediaStore::open(Some("ftp://x/y"), &dir).is_err());
    }

    #[test]
    fn the_secret_key_stays_out_of_logs() {
        let options = S3Options {
            secret_access_key: Some("hunter2".into()),
            ..S3Options::default()
        };
        assert!(!format!("{options:?}").contains("hunter2"));
    }
}
