//! A chat socket's outgoing side. The room's writer hands every socket the same encoded
//! bytes and they go to the kernel right there, in one non-blocking write, without waking
//! the socket's own task (review S1: the per-socket cost of a message is one system call).
//! Only what the kernel cannot take at once waits in the socket's queue, which its
//! session drains as the peer reads; a peer too far behind is cut off.

use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice};
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Bytes;

/// Why a socket's outgoing side stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// More than the queue limit waited: the peer does not read fast enough.
    TooSlow,
    /// The connection is gone.
    Failed,
    /// This side's close frame is queued: nothing may follow it (RFC 6455 §5.5.1).
    Sealed,
}

/// Writes gathered into one system call when draining a backlog.
const MAX_SLICES: usize = 64;

pub struct Outbox {
    socket: OwnedWriteHalf,
    queue: Mutex<Queue>,
    /// Wakes the session when something is left to drain (or the socket stopped).
    backlog: Notify,
    limit: usize,
    /// Sent in place of the backlog when the peer is cut off for being too slow.
    too_slow: Bytes,
}

struct Queue {
    /// Encoded frames (or runs of frames) not yet in the kernel, oldest first.
    waiting: VecDeque<Bytes>,
    /// How much of the first one the kernel already took.
    written: usize,
    /// While held, nothing is written: frames queue up behind what must go first.
    held: bool,
    stopped: Option<Stop>,
}

impl Outbox {
    /// A held outbox: frames queue until `open` puts the first frames in front of them.
    /// `limit`: writes that may wait before the socket counts as too slow.
    pub fn new(socket: OwnedWriteHalf, limit: usize, too_slow: Bytes) -> Self {
        Self {
            socket,
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                written: 0,
                held: true,
                stopped: None,
            }),
            backlog: Notify::new(),
            limit,
            too_slow,
        }
    }

    /// Writes `first` ahead of everything queued so far, and from now on writes at once.
    pub fn open(&self, first: impl IntoIterator<Item = Bytes>) {
        let mut queue = self.lock();
        let mut first: VecDeque<Bytes> = first.into_iter().collect();
        first.append(&mut queue.waiting);
        queue.waiting = first;
        queue.held = false;
        drop(queue);
        self.backlog.notify_one();
    }

    /// Sends encoded frames: straight into the kernel when nothing is waiting, else
    /// behind what is. Refused once the socket stopped.
    pub fn send(&self, bytes: Bytes) -> Result<(), Stop> {
        let mut queue = self.lock();
        if let Some(stop) = queue.stopped {
            return Err(stop);
        }
        if queue.waiting.is_empty() && !queue.held {
            match self.socket.try_write(&bytes) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(n) => queue.written = n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return Err(self.stop(&mut queue, Stop::Failed)),
            }
            queue.waiting.push_back(bytes);
            drop(queue);
            self.backlog.notify_one();
            return Ok(());
        }
        if queue.waiting.len() >= self.limit {
            return Err(self.stop(&mut queue, Stop::TooSlow));
        }
        queue.waiting.push_back(bytes);
        Ok(())
    }

    /// Refuses anything more: call once this side's close frame is queued.
    pub fn seal(&self) {
        let mut queue = self.lock();
        queue.stopped.get_or_insert(Stop::Sealed);
    }

    /// Drains the queue as the peer reads; returns only when the socket must stop.
    /// Cancel-safe: what is not written stays queued.
    pub async fn drain(&self) -> Stop {
        loop {
            let backlog = self.backlog.notified();
            let mut backlog = std::pin::pin!(backlog);
            backlog.as_mut().enable();
            let idle = {
                let queue = self.lock();
                if let Some(stop) = queue.stopped {
                    return stop;
                }
                queue.held || queue.waiting.is_empty()
            };
            if idle {
                backlog.await;
                continue;
            }
            if self.socket.writable().await.is_err() || self.write_waiting().is_err() {
                return self.stop(&mut self.lock(), Stop::Failed);
            }
        }
    }

    /// Gives what is still queued (a close frame, say) up to `within` to reach the peer.
    pub async fn finish(&self, within: Duration) {
        let flushed = async {
            loop {
                {
                    let queue = self.lock();
                    if queue.waiting.is_empty() || queue.stopped == Some(Stop::Failed) {
                        return;
                    }
                }
                if self.socket.writable().await.is_err() || self.write_waiting().is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(within, flushed).await;
    }

    /// Writes as much of the queue as the kernel takes, in one call.
    fn write_waiting(&self) -> std::io::Result<()> {
        let mut queue = self.lock();
        let slices: Vec<IoSlice<'_>> = queue
            .waiting
            .iter()
            .take(MAX_SLICES)
            .enumerate()
            .map(|(i, bytes)| {
                IoSlice::new(if i == 0 {
                    &bytes[queue.written..]
                } else {
                    bytes
                })
            })
            .collect();
        let mut n = match self.socket.try_write_vectored(&slices) {
            Ok(n) => n + queue.written,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        drop(slices);
        while let Some(front) = queue.waiting.front() {
            if n < front.len() {
                break;
            }
            n -= front.len();
            queue.waiting.pop_front();
        }
        queue.written = n;
        Ok(())
    }

    /// Marks the socket stopped. A peer cut off for being slow loses its backlog (all but
    /// a partly written frame, which must end whole) to a close frame saying why.
    fn stop(&self, queue: &mut Queue, stop: Stop) -> Stop {
        if queue.stopped.is_none() {
            queue.stopped = Some(stop);
            let keep = usize::from(queue.written > 0);
            queue.waiting.truncate(keep);
            if stop == Stop::TooSlow {
                queue.waiting.push_back(self.too_slow.clone());
            }
            self.backlog.notify_one();
        }
        stop
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().expect("outbox lock")
    }
}
