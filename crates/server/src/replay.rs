//! Replay protection in memory: a body accepted within the window is answered again
//! but not delivered again, also when many copies arrive at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dronehook_protocol::BodyDigest;
use tokio::sync::watch;

enum Slot {
    /// A copy is being processed; later copies wait for its outcome.
    Pending(watch::Receiver<()>),
    /// Accepted; copies until this instant are replays.
    Accepted(Instant),
}

/// Accepted dedupe keys, each kept for the window (older copies fail the `Date` check
/// anyway), so memory stays bounded by the accepted rate times the window.
pub(crate) struct ReplayCache {
    window: Duration,
    inner: Mutex<Inner>,
}

struct Inner {
    slots: HashMap<BodyDigest, Slot>,
    last_prune: Instant,
}

/// The outcome of [`ReplayCache::claim`].
pub(crate) enum Claim<'a> {
    /// The first copy: process it, then [`Guard::accept`] (dropping the guard forgets it).
    Fresh(Guard<'a>),
    /// An accepted copy: answer success, do not deliver.
    Replay,
}

/// The right to process one body; other copies wait until it is accepted or dropped.
pub(crate) struct Guard<'a> {
    cache: &'a ReplayCache,
    key: BodyDigest,
    done: Option<watch::Sender<()>>,
}

impl Guard<'_> {
    /// Marks the body accepted: copies within the window are replays.
    pub(crate) fn accept(mut self) {
        let until = Instant::now() + self.cache.window;
        self.cache
            .lock()
            .slots
            .insert(self.key, Slot::Accepted(until));
        // Dropping the sender wakes the waiting copies, which now see `Accepted`.
        self.done.take();
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.done.is_some() {
            // Not accepted (refused or failed): forget it, so a waiting copy or a later
            // retry is processed afresh.
            self.cache.lock().slots.remove(&self.key);
        }
    }
}

impl ReplayCache {
    pub(crate) fn new(window: Duration) -> Self {
        ReplayCache {
            window,
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                last_prune: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims a body: the first copy gets a guard, copies of an accepted body get
    /// `Replay`, copies arriving while the first is in progress wait for its outcome.
    pub(crate) async fn claim(&self, key: BodyDigest) -> Claim<'_> {
        loop {
            let mut waiter = {
                let mut inner = self.lock();
                let now = Instant::now();
                if now.duration_since(inner.last_prune) > Duration::from_secs(1) {
                    inner.slots.retain(|_, slot| match slot {
                        Slot::Accepted(until) => *until > now,
                        Slot::Pending(_) => true,
                    });
                    inner.last_prune = now;
                }
                match inner.slots.get(&key) {
                    Some(Slot::Accepted(until)) if *until > now => return Claim::Replay,
                    Some(Slot::Pending(rx)) => rx.clone(),
                    _ => {
                        let (tx, rx) = watch::channel(());
                        inner.slots.insert(key, Slot::Pending(rx));
                        return Claim::Fresh(Guard {
                            cache: self,
                            key,
                            done: Some(tx),
                        });
                    }
                }
            };
            // Resolves when the first copy's guard is accepted or dropped.
            let _ = waiter.changed().await;
        }
    }

    /// How many keys are held (for tests of the bound).
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
        let cache = ReplayCache::new(Duration::from_millis(1));
        let key = BodyDigest::of(b"x");
        match cache.claim(key).await {
            Claim::Fresh(g) => g.accept(),
            Claim::Replay => panic!("first copy is fresh"),
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
        let cache = ReplayCache::new(Duration::from_secs(60));
        let key = BodyDigest::of(b"y");
        let first = cache.claim(key).await;
        drop(first);
        match cache.claim(key).await {
            Claim::Fresh(g) => g.accept(),
            Claim::Replay => panic!("a refused copy is not remembered"),
        }
        assert!(matches!(cache.claim(key).await, Claim::Replay));
    }
}
