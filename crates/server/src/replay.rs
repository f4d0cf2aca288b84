//! Replay protection in memory: a body accepted within the window is answered again
//! but not delivered again, also when many copies arrive at once. The map holds at
//! most a set number of entries; when it is full, a new body is not let through
//! unchecked (see [`Claim::Full`]).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dronehook_protocol::BodyDigest;
use tokio::sync::Notify;

enum Slot {
    /// A copy is being processed; later copies wait for its outcome. The notifier is
    /// made by the first copy that has to wait, so the common case allocates nothing.
    Pending(Option<Arc<Notify>>),
    /// Accepted; copies until this instant are replays.
    Accepted(Instant),
}

/// Hashes a SHA-256 digest by mixing its bytes eight at a time, without SipHash's
/// keyed rounds: the keys are uniformly distributed and nobody can choose them (only
/// signed bodies reach the cache, and finding a body for a chosen digest is a
/// preimage attack on SHA-256), so flooding one bucket is not possible.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Accepted dedupe keys, each kept for the window (older copies fail the `Date` check
/// anyway), and at most `capacity` of them (accepted and in flight together): memory
/// is the smaller of the accepted rate times the window and the capacity, times 115 to
/// 165 bytes an entry (resident memory measured at 10 000 to 1 000 000 entries; the
/// map and the queue grow by doubling, hence the range).
pub(crate) struct ReplayCache {
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("window", &self.window)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Whether the last new key was refused for want of room: the start of a full
    /// spell is logged once, and so is its end.
    full: bool,
    slots: HashMap<BodyDigest, Slot, BuildHasherDefault<DigestHasher>>,
    /// Accepted keys in the order they expire (the window is the same for all), so
    /// pruning takes the expired ones off the front: no pass over the whole map,
    /// which at tens of thousands of requests a second holds millions of keys.
    expiry: VecDeque<(Instant, BodyDigest)>,
}

impl Inner {
    fn prune(&mut self, now: Instant) {
        while let Some(&(until, key)) = self.expiry.front() {
            if until > now {
                break;
            }
            self.expiry.pop_front();
            // The key may have expired and been accepted again since: only the slot
            // this entry made is removed.
            if matches!(self.slots.get(&key), Some(Slot::Accepted(t)) if *t == until) {
                self.slots.remove(&key);
            }
        }
    }
}

/// The outcome of claiming a key.
pub(crate) enum Claim<'a> {
    /// The first copy: process it, then `accept` the guard (or drop it to let the
    /// next copy try).
    Fresh(Guard<'a>),
    /// A copy of a request already accepted within the window.
    Replay,
    /// A new key, and the map is at its capacity: the request cannot be checked here.
    /// Room comes back when the oldest entry expires, this long from now.
    Full(Duration),
}

/// Held while the first copy of a request is processed.
pub(crate) struct Guard<'a> {
    cache: &'a ReplayCache,
    key: BodyDigest,
    pending: bool,
}

impl Guard<'_> {
    /// The request was accepted: copies within the window are replays from now on.
    pub(crate) fn accept(mut self) {
        let until = Instant::now() + self.cache.window;
        let waiting = {
            let mut inner = self.cache.lock();
            inner.expiry.push_back((until, self.key));
            inner.slots.insert(self.key, Slot::Accepted(until))
        };
        self.pending = false;
        wake(waiting);
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.pending {
            let waiting = self.cache.lock().slots.remove(&self.key);
            wake(waiting);
        }
    }
}

/// Wakes the copies waiting on a slot that was pending.
fn wake(slot: Option<Slot>) {
    if let Some(Slot::Pending(Some(notify))) = slot {
        notify.notify_waiters();
    }
}

impl ReplayCache {
    /// A cache that remembers accepted keys for `window`, at most `capacity` of them
    /// (at least 1).
    pub(crate) fn new(window: Duration, capacity: usize) -> Self {
        ReplayCache {
            window,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                full: false,
                slots: HashMap::default(),
                expiry: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims `key`: the first copy gets a guard; a copy of an accepted request is a
    /// replay; a copy that arrives while the first is still processed waits for its
    /// outcome; a new key finds the map full when it holds `capacity` entries.
    pub(crate) async fn claim(&self, key: BodyDigest) -> Claim<'_> {
        loop {
            let mut notified = {
                let mut inner = self.lock();
                let now = Instant::now();
                inner.prune(now);
                let len = inner.slots.len();
                match inner.slots.get_mut(&key) {
                    Some(Slot::Accepted(until)) if *until > now => return Claim::Replay,
                    Some(Slot::Pending(notify)) => {
                        let notify = notify.get_or_insert_with(|| Arc::new(Notify::new()));
                        // Registered before the lock is released, so the first copy's
                        // wake-up cannot fall between the two.
                        let mut notified = Box::pin(Arc::clone(notify).notified_owned());
                        notified.as_mut().enable();
                        notified
                    }
                    // Pruned above, so a key still present is not expired: only an
                    // absent key makes a new entry, and only it can find no room.
                    None if len >= self.capacity => {
                        // The oldest accepted entry goes first; with none (every entry
                        // in flight) room comes back as soon as one is answered.
                        let wait = inner
                            .expiry
                            .front()
                            .map_or(Duration::ZERO, |(until, _)| until.duration_since(now));
                        let starts = !std::mem::replace(&mut inner.full, true);
                        drop(inner);
                        if starts {
                            tracing::warn!(
                                capacity = self.capacity,
                                "the replay map is full: new requests are refused with 503 \
                                 (or left to the journal) until its oldest entries expire"
                            );
                        }
                        return Claim::Full(wait);
                    }
                    _ => {
                        inner.slots.insert(key, Slot::Pending(None));
                        let ends = std::mem::replace(&mut inner.full, false);
                        drop(inner);
                        if ends {
                            tracing::info!("the replay map has room again");
                        }
                        return Claim::Fresh(Guard {
                            cache: self,
                            key,
                            pending: true,
                        });
                    }
                }
            };
            notified.as_mut().await;
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_keys_expire_and_are_pruned() {
        let cache = ReplayCache::new(Duration::from_millis(1), 16);
        let key = BodyDigest::of(b"x");
        match cache.claim(key).await {
            Claim::Fresh(g) => g.accept(),
            Claim::Replay | Claim::Full(_) => panic!("first copy is fresh"),
        }
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            matches!(cache.claim(key).await, Claim::Fresh(_)),
            "expired key is fresh again"
        );
        assert_eq!(cache.len(), 0, "a dropped guard forgets the key");
    }

    #[tokio::test]
    async fn dropped_guard_lets_the_next_copy_through() {
        let cache = ReplayCache::new(Duration::from_secs(60), 16);
        let key = BodyDigest::of(b"y");
        let first = cache.claim(key).await;
        drop(first);
        match cache.claim(key).await {
            Claim::Fresh(g) => g.accept(),
            Claim::Replay | Claim::Full(_) => panic!("a refused copy is not remembered"),
        }
        assert!(matches!(cache.claim(key).await, Claim::Replay));
    }

    #[tokio::test]
    async fn an_expired_entry_does_not_remove_a_newer_acceptance() {
        let cache = ReplayCache::new(Duration::from_millis(20), 16);
        let key = BodyDigest::of(b"z");
        let Claim::Fresh(g) = cache.claim(key).await else {
            panic!("first copy is fresh")
        };
        g.accept();
        std::thread::sleep(Duration::from_millis(30));
        // Expired: fresh again, and accepted again with a new deadline.
        let Claim::Fresh(g) = cache.claim(key).await else {
            panic!("an expired key is fresh")
        };
        g.accept();
        assert_eq!(
            cache.lock().expiry.len(),
            1,
            "the first deadline was pruned"
        );
        assert!(matches!(cache.claim(key).await, Claim::Replay));
    }

    #[tokio::test]
    async fn copies_that_arrive_while_the_first_is_processed_wait_for_its_outcome() {
        let cache = Arc::new(ReplayCache::new(Duration::from_secs(60), 16));
        let key = BodyDigest::of(b"w");
        let Claim::Fresh(first) = cache.claim(key).await else {
            panic!("first copy is fresh")
        };
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { matches!(cache.claim(key).await, Claim::Replay) })
            })
            .collect();
        // Let every waiter register before the outcome is known.
        tokio::task::yield_now().await;
        first.accept();
        for w in waiters {
            assert!(
                w.await.unwrap(),
                "a waiting copy is a replay once the first is accepted"
            );
        }
    }

    #[tokio::test]
    async fn a_full_map_refuses_new_keys_but_still_knows_its_own() {
        let window = Duration::from_secs(60);
        let cache = ReplayCache::new(window, 1);
        let (a, b) = (BodyDigest::of(b"a"), BodyDigest::of(b"b"));
        let Claim::Fresh(first) = cache.claim(a).await else {
            panic!("first copy is fresh")
        };
        // A key in flight takes its room too; room comes back as soon as it is answered.
        assert!(matches!(cache.claim(b).await, Claim::Full(wait) if wait == Duration::ZERO));
        first.accept();
        assert!(matches!(cache.claim(a).await, Claim::Replay));
        let Claim::Full(wait) = cache.claim(b).await else {
            panic!("no room for a new key")
        };
        assert!(wait > Duration::from_secs(55) && wait <= window, "{wait:?}");
        assert_eq!(cache.len(), 1);
    }
}
