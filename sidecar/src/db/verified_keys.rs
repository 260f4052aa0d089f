//! Host keys verified against the database moments ago, so that the calls that continue an
//! operation (`start` and the calls of an open normal sync, the media calls after
//! `msync/begin`) need not look their key up again (docs/performance.md, "Host keys inside an
//! operation").
//!
//! Exact for everything this process does: every deletion of host keys here (a revocation,
//! a password change or deactivation found at a request, the sweep, the internal API) moves
//! [`VerifiedKeys::revoked`]'s epoch, which voids every remembered key at once. What Django
//! changes in its own table (a password, `is_active`) is seen at the next lookup: the calls
//! that begin an operation (`meta`, `msync/begin`, the full sync calls) always look up, and a
//! remembered key is looked up again once it is [`RECHECK_AFTER`] old.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::users::DjangoUser;

/// How long a verified key is trusted without a new lookup.
pub const RECHECK_AFTER: Duration = Duration::from_secs(5);

/// Entries kept at most; past that, the stale ones go, then all of them.
const MAX_ENTRIES: usize = 4096;

struct Verified {
    user: DjangoUser,
    epoch: u64,
    at: Instant,
}

#[derive(Default)]
pub struct VerifiedKeys {
    epoch: AtomicU64,
    entries: Mutex<HashMap<String, Verified>>,
}

impl VerifiedKeys {
    /// The epoch to pass to [`Self::remember`]: read it before the lookup, so that a
    /// revocation committed after the lookup read the key voids what it remembers.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Voids every remembered key. Called after every deletion of host keys.
    pub fn revoked(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.lock().clear();
    }

    pub fn remember(&self, key_digest: &str, user: &DjangoUser, epoch: u64) {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key_digest) {
            entries.retain(|_, v| now.duration_since(v.at) < RECHECK_AFTER);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key_digest.to_string(),
            Verified {
                user: user.clone(),
                epoch,
                at: now,
            },
        );
    }

    /// The key's user if it was verified under the current epoch within [`RECHECK_AFTER`].
    pub fn recall(&self, key_digest: &str) -> Option<DjangoUser> {
        let epoch = self.epoch();
        let entries = self.lock();
        let found = entries.get(key_digest)?;
        (found.epoch == epoch && found.at.elapsed() < RECHECK_AFTER).then(|| found.user.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Verified>> {
        // The map holds no invariant a panic could break halfway.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for VerifiedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedKeys")
            .field("epoch", &self.epoch())
            .field("entries", &self.lock().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> DjangoUser {
        DjangoUser {
            id: 1,
            username: "alice".into(),
            password: "pbkdf2_sha256$1$s$h".into(),
            is_active: true,
        }
    }

    #[test]
    fn a_remembered_key_is_recalled() {
        let keys = VerifiedKeys::default();
        keys.remember("d1", &alice(), keys.epoch());
        assert_eq!(keys.recall("d1").map(|u| u.id), Some(1));
        assert!(keys.recall("d2").is_none());
    }

    #[test]
    fn a_revocation_voids_every_remembered_key() {
        let keys = VerifiedKeys::default();
        keys.remember("d1", &alice(), keys.epoch());
        keys.revoked();
        assert!(keys.recall("d1").is_none());
    }

    #[test]
    fn a_lookup_that_raced_a_revocation_is_not_trusted() {
        let keys = VerifiedKeys::default();
        // The epoch is read before the lookup; the revocation commits while it runs.
        let before_lookup = keys.epoch();
        keys.revoked();
        keys.remember("d1", &alice(), before_lookup);
        assert!(keys.recall("d1").is_none());
    }

    #[test]
    fn a_key_verified_too_long_ago_is_looked_up_again() {
        let keys = VerifiedKeys::default();
        keys.remember("d1", &alice(), keys.epoch());
        for entry in keys.lock().values_mut() {
            entry.at = Instant::now()
                .checked_sub(RECHECK_AFTER + Duration::from_millis(1))
                .unwrap();
        }
        assert!(keys.recall("d1").is_none());
    }

    #[test]
    fn the_map_stays_bounded() {
        let keys = VerifiedKeys::default();
        for n in 0..MAX_ENTRIES + 10 {
            keys.remember(&format!("d{n}"), &alice(), keys.epoch());
        }
        assert!(keys.lock().len() <= MAX_ENTRIES);
        assert!(keys.recall(&format!("d{}", MAX_ENTRIES + 9)).is_some());
    }
}
