//! LL-HLS on the serving side (RFC 8216bis §6.2.5): a blocking playlist reload
//! (`_HLS_msn`, `_HLS_part`) is held until the playlist holds that segment or part, and a
//! request for the part the playlist hints (not written yet) until it exists; each for
//! at most three target durations as first read (and never past 6 s). Both read the
//! media store, so any node serves them; however many requests a node holds on one
//! object, one task per object reads it ([`HeldReads`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use onair_infra::{MediaStore, MediaStoreError};
use onair_media::LiveEdge;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;
use utoipa::IntoParams;

use super::fetch;
use crate::error::ApiError;

/// How often an object that requests are held on is read again.
const POLL: Duration = Duration::from_millis(20);

/// A blocking playlist reload's query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct BlockingReload {
    /// LL-HLS: answer once the playlist holds this media sequence number.
    #[serde(rename = "_HLS_msn")]
    #[param(rename = "_HLS_msn")]
    msn: Option<u64>,
    /// LL-HLS, with `_HLS_msn`: once it holds this part of that segment.
    #[serde(rename = "_HLS_part")]
    #[param(rename = "_HLS_part")]
    part: Option<u64>,
}

/// How long a request is held at most: three target durations of the playlist as first
/// read (RFC 8216bis §6.2.5.2), never past this.
const HOLD_LIMIT: Duration = Duration::from_secs(6);
/// Parts a request may ask for beyond the playlist's last (its Advance Part Limit).
const ADVANCE_PARTS: u64 = 3;

/// A live playlist as a blocking reload is answered.
pub(super) struct Reloaded {
    pub(super) playlist: Bytes,
    /// It holds what the request asked for (so it may be cached by the request's query).
    pub(super) holds_request: bool,
}

/// The live playlist at `key` as `reload` asks for it: at once without `_HLS_msn`, else
/// once it holds that segment or part, or has stopped growing (then as it is, which does
/// not hold the request). 400 for a part without a segment, or a segment or part too
/// far ahead; 503 `part_not_ready` when the hold runs out.
pub(super) async fn playlist(
    held: &Arc<HeldReads>,
    key: &str,
    reload: &BlockingReload,
) -> Result<Reloaded, ApiError> {
    if reload.msn.is_none() && reload.part.is_some() {
        return Err(ApiError::InvalidQuery("_HLS_part needs _HLS_msn".into()));
    }
    let playlist = fetch(&held.files, key).await?;
    let Some(msn) = reload.msn else {
        return Ok(Reloaded {
            playlist,
            holds_request: false,
        });
    };
    let deadline = Instant::now() + hold_limit(&edge_of(&playlist));
    let answer = |playlist: &Bytes| -> Result<Option<Reloaded>, ApiError> {
        let edge = edge_of(playlist);
        let holds_request = edge.has(msn, reload.part);
        if holds_request || !edge.growing() {
            let playlist = playlist.clone();
            return Ok(Some(Reloaded {
                playlist,
                holds_request,
            }));
        }
        let parts_ahead = msn == edge.open_segment
            && reload
                .part
                .is_some_and(|part| part >= edge.open_parts + ADVANCE_PARTS);
        if msn > edge.open_segment + 2 || parts_ahead {
            return Err(ApiError::InvalidQuery(format!(
                "_HLS_msn {msn} (_HLS_part {:?}) is too far after the playlist's last segment ({}, {} parts)",
                reload.part, edge.open_segment, edge.open_parts
            )));
        }
        Ok(None)
    };
    if let Some(reloaded) = answer(&playlist)? {
        return Ok(reloaded);
    }
    held.wait(key, deadline, |read| match read {
        Some(playlist) => answer(playlist),
        None => Err(ApiError::NotFound("media file")),
    })
    .await
}

fn edge_of(playlist: &[u8]) -> LiveEdge {
    LiveEdge::of(&String::from_utf8_lossy(playlist))
}

/// Three target durations of `edge`'s playlist, at most [`HOLD_LIMIT`].
fn hold_limit(edge: &LiveEdge) -> Duration {
    Duration::from_secs(3 * edge.target_seconds).min(HOLD_LIMIT)
}

/// The part at `key`; if it is not there yet but its rendition's playlist (`playlist_key`)
/// hints it as the next part, once it is written.
pub(super) async fn part(
    held: &Arc<HeldReads>,
    key: &str,
    playlist_key: &str,
) -> Result<Bytes, ApiError> {
    if let Some(part) = held.files.get(key).await? {
        return Ok(part);
    }
    let name = key.rsplit('/').next().unwrap_or_default();
    let edge = edge_of(&fetch(&held.files, playlist_key).await?);
    if edge.hinted.as_deref() != Some(name) {
        return Err(ApiError::NotFound("media file"));
    }
    let deadline = Instant::now() + hold_limit(&edge);
    held.wait(key, deadline, |read| Ok(read.cloned())).await
}

/// The media store as held requests read it: one task per object that requests are
/// held on, reading it every [`POLL`] while any wait and publishing what it read, so a
/// thousand players waiting for the next part cost the store what one does.
pub(crate) struct HeldReads {
    files: MediaStore,
    /// Objects being read, each with the last read; a reader stops (and leaves) when no
    /// request waits on it any more.
    reading: Mutex<HashMap<String, watch::Sender<Read>>>,
}

/// An object's last read, as a held request sees it.
#[derive(Clone)]
enum Read {
    /// Not read yet.
    Pending,
    /// Its bytes, or None while it does not exist.
    Done(Option<Bytes>),
    Failed(Arc<MediaStoreError>),
}

impl HeldReads {
    pub(crate) fn new(files: MediaStore) -> Arc<Self> {
        Arc::new(Self {
            files,
            reading: Mutex::default(),
        })
    }

    /// Waits until `ready` makes an answer of the object at `key` (None: it does not
    /// exist), or an error; 503 `part_not_ready` at `deadline`.
    async fn wait<T>(
        self: &Arc<Self>,
        key: &str,
        deadline: Instant,
        mut ready: impl FnMut(Option<&Bytes>) -> Result<Option<T>, ApiError>,
    ) -> Result<T, ApiError> {
        let mut reads = self.subscribe(key);
        loop {
            let read = reads.borrow_and_update().clone();
            match read {
                Read::Pending => {}
                Read::Done(bytes) => {
                    if let Some(answer) = ready(bytes.as_ref())? {
                        return Ok(answer);
                    }
                }
                Read::Failed(error) => return Err(ApiError::from(&*error)),
            }
            match tokio::time::timeout_at(deadline, reads.changed()).await {
                Ok(Ok(())) => {}
                // The reader is gone (it panicked) or the time is up.
                Ok(Err(_)) | Err(_) => return Err(ApiError::PartNotReady),
            }
        }
    }

    /// The reads of `key`, starting its reader unless one runs.
    fn subscribe(self: &Arc<Self>, key: &str) -> watch::Receiver<Read> {
        let mut reading = self.reading();
        if let Some(reads) = reading.get(key) {
            return reads.subscribe();
        }
        let (reads, receiver) = watch::channel(Read::Pending);
        reading.insert(key.to_owned(), reads.clone());
        tokio::spawn(Arc::clone(self).read(key.to_owned(), reads));
        receiver
    }

    fn reading(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Read>>> {
        self.reading.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads `key` until no request waits on it, publishing each read that differs.
    async fn read(self: Arc<Self>, key: String, reads: watch::Sender<Read>) {
        // However this task ends (a panic too), its entry goes: later requests start a
        // reader of their own rather than wait on one that is gone.
        let _leaving = Leaving {
            held: Arc::clone(&self),
            key: key.clone(),
            reads: reads.clone(),
        };
        loop {
            let read = match self.files.get(&key).await {
                Ok(bytes) => Read::Done(bytes),
                Err(error) => Read::Failed(Arc::new(error)),
            };
            reads.send_if_modified(|last| {
                let changed = match (&*last, &read) {
                    (Read::Done(last), Read::Done(read)) => last != read,
                    _ => true,
                };
                if changed {
                    *last = read;
                }
                changed
            });
            {
                // Under the lock new waiters subscribe with: none can slip in between.
                let mut reading = self.reading();
                if reads.receiver_count() == 0 {
                    reading.remove(&key);
                    return;
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    #[cfg(test)]
    fn objects_read(&self) -> usize {
        self.reading().len()
    }
}

/// Removes a reader's entry when its task ends, unless a newer reader has the key.
struct Leaving {
    held: Arc<HeldReads>,
    key: String,
    reads: watch::Sender<Read>,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        let mut reading = self.held.reading();
        if reading
            .get(&self.key)
            .is_some_and(|reads| reads.same_channel(&self.reads))
        {
            reading.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PART: &str = "live/stream/source/part_00001_abcdef_2.m4s";

    #[tokio::test]
    async fn one_reader_serves_every_held_request_and_leaves_after_them() {
        let spool = tempfile::tempdir().unwrap();
        let files = MediaStore::open(None, spool.path()).unwrap();
        let held = HeldReads::new(files.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let held = Arc::clone(&held);
                tokio::spawn(
                    async move { held.wait(PART, deadline, |read| Ok(read.cloned())).await },
                )
            })
            .collect();
        tokio::time::sleep(POLL * 3).await;
        assert_eq!(held.objects_read(), 1, "one reader for a hundred requests");

        files.put(PART, Bytes::from_static(b"part")).await.unwrap();
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap().unwrap(), "part");
        }
        tokio::time::sleep(POLL * 3).await;
        assert_eq!(
            held.objects_read(),
            0,
            "the reader left with the last request"
        );
    }

    #[tokio::test]
    async fn a_request_held_past_its_deadline_is_told_the_part_is_not_ready() {
        let spool = tempfile::tempdir().unwrap();
        let held = HeldReads::new(MediaStore::open(None, spool.path()).unwrap());
        let deadline = Instant::now() + POLL * 2;
        let waited = held.wait(PART, deadline, |read| Ok(read.cloned())).await;
        assert!(matches!(waited, Err(ApiError::PartNotReady)));
    }
}
