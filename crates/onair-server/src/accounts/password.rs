//! argon2id password hashing (OWASP parameters: 19 MiB, 2 passes), bounded so a login
//! flood cannot take the node down. Each hash needs 19 MiB: unbounded, 40 parallel
//! failed logins once took the process from 20 MB to 959 MB, and the allocator never
//! gave it back. So at most `slots` hashes run at once (the cores), each on a working
//! memory allocated once and reused, which keeps resident memory at its idle level plus
//! `slots × 19 MiB` whatever arrives; a few requests may wait briefly for a slot, the
//! rest are answered 503 with `Retry-After` at once.

use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use onair_core::Password;
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::error::ApiError;

/// Requests that may wait for a slot, per slot: a burst of real logins is served, a
/// flood is refused without holding its passwords in memory for long.
const WAITING_PER_SLOT: usize = 8;
/// How long one waits before it is refused.
const MAX_WAIT: Duration = Duration::from_secs(2);
/// Bytes of hash in a new PHC string.
const OUTPUT_LEN: usize = 32;

/// Hashes and verifies passwords within a bounded number of slots.
pub struct PasswordHashing {
    slots: Arc<Semaphore>,
    waiting: Semaphore,
    /// One working memory per slot, reused from hash to hash.
    memories: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl PasswordHashing {
    /// `slots` hashes at once; 0 means one per core.
    pub fn new(slots: usize) -> Self {
        let slots = match slots {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            waiting: Semaphore::new(slots * WAITING_PER_SLOT),
            memories: Arc::new(Mutex::new(Vec::with_capacity(slots))),
        }
    }

    /// A new PHC string for `password`, with a random salt.
    pub async fn hash(&self, password: Password) -> Result<String, ApiError> {
        self.run(move |memory| new_hash(password.expose().as_bytes(), memory))
            .await?
            .map_err(|e| {
                tracing::error!(error = %e, "password hashing failed");
                ApiError::Internal
            })
    }

    /// Whether `password` matches the stored PHC hash. With no stored hash (unknown
    /// login) it verifies against a dummy, so response time does not reveal which
    /// logins exist.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        static DUMMY: LazyLock<String> = LazyLock::new(|| {
            new_hash(b"dummy password for unknown logins", &mut Vec::new())
                .expect("hashing a constant")
        });
        self.run(move |memory| {
            let known = stored.is_some();
            let stored = stored.as_deref().unwrap_or(DUMMY.as_str());
            matches(password.as_bytes(), stored, memory) && known
        })
        .await
    }

    /// Runs `work` on the blocking pool in a slot, with the slot's working memory.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let slot = self.slot().await?;
        let memories = Arc::clone(&self.memories);
        let (done, result) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            // The request is gone (past its deadline, or the client left) while this
            // waited for a blocking thread: hashing for nobody would only hold the slot.
            if done.is_closed() {
                return;
            }
            let take = || {
                memories
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop()
            };
            let mut memory = take().unwrap_or_default();
            let output = work(&mut memory);
            memories
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(memory);
            let _ = done.send(output);
        });
        result.await.map_err(|_| ApiError::Internal)
    }

    /// A free slot, waiting a little if few others wait; else 503.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        let busy = || {
            metrics::counter!("onair_password_hashes_refused_total").increment(1);
            ApiError::Unavailable
        };
        if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(slot);
        }
        let _waiting = self.waiting.try_acquire().map_err(|_| busy())?;
        match tokio::time::timeout(MAX_WAIT, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(busy()),
        }
    }
}

/// `memory` as the working memory `params` need (grown once, kept for the next hash).
fn working_memory<'m>(params: &Params, memory: &'m mut Vec<Block>) -> &'m mut [Block] {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    &mut memory[..blocks]
}

fn new_hash(password: &[u8], memory: &mut Vec<Block>) -> argon2::password_hash::Result<String> {
    let params = Params::default();
    let salt = Salt::new(&rand::random::<[u8; 16]>())?;
    let mut output = [0; OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password,
            &salt,
            &mut output,
            working_memory(&params, memory),
        )?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt),
        hash: Some(Output::new(&output)?),
    };
    Ok(hash.to_string())
}

/// Whether `password` hashes to `stored` (a PHC string of any argon2 variant and
/// parameters), compared in constant time.
fn matches(password: &[u8], stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let algorithm = Algorithm::try_from(hash.algorithm.as_str());
    let version = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let (Ok(algorithm), Ok(version), Ok(params)) = (algorithm, version, Params::try_from(&hash))
    else {
        return false;
    };
    let mut output = vec![0; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let memory = working_memory(&params, memory);
    argon2
        .hash_password_into_with_memory(password, salt, &mut output, memory)
        .is_ok()
        && bool::from(output.ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher;

    use super::*;

    #[test]
    fn hashes_verify_with_reused_memory_and_match_the_crates_own() {
        let mut memory = Vec::new();
        let ours = new_hash(b"correct horse", &mut memory).unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        assert!(matches(b"correct horse", &ours, &mut memory));
        assert!(!matches(b"correct horsf", &ours, &mut memory));
        // Hashes made before this module (the crate's own hasher) still verify.
        let theirs = Argon2::default()
            .hash_password(b"battery staple")
            .unwrap()
            .to_string();
        assert!(matches(b"battery staple", &theirs, &mut memory));
        for garbage in ["", "$argon2id$", "plain text", &ours[..ours.len() - 4]] {
            assert!(
                !matches(b"correct horse", garbage, &mut memory),
                "{garbage}"
            );
        }
        let other_params = "$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$\
            6nQ5x2C0wYtb5LKmCmc5yNmbKmhwzGXOE1Ib1LC3jzg";
        assert!(!matches(b"x", other_params, &mut memory));
    }

    #[tokio::test]
    async fn past_its_slots_and_waiting_room_a_hash_is_refused() {
        let hashing = Arc::new(PasswordHashing::new(1));
        let held = Arc::clone(&hashing.slots).try_acquire_owned().unwrap();
        let waiting: Vec<_> = (0..WAITING_PER_SLOT)
            .map(|_| {
                let hashing = Arc::clone(&hashing);
                tokio::spawn(async move { hashing.verify("x".into(), None).await })
            })
            .collect();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = hashing.verify("x".into(), None).await;
        assert!(matches!(refused, Err(ApiError::Unavailable)), "{refused:?}");
        drop(held);
        for waiter in waiting {
            assert!(!waiter.await.unwrap().unwrap(), "a wrong password");
        }
    }
}
