//! Per-user serialization without a global lock.
//!
//! A map from Django user id to that user's slot. The map's own mutex is held only to find or
//! insert a slot; the work of one user then runs under that user's async mutex, so different
//! users proceed in parallel and one user's requests run one at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::normal_sync::NormalSyncSession;

/// What one user's requests share while they hold the user's lock.
#[derive(Default)]
pub struct UserSlot {
    /// The active normal sync, if any (kept here between HTTP requests).
    pub session: Option<NormalSyncSession>,
}

#[derive(Default)]
pub struct Registry {
    users: Mutex<HashMap<i64, Arc<AsyncMutex<UserSlot>>>>,
}

impl Registry {
    fn slot(&self, user_id: i64) -> Arc<AsyncMutex<UserSlot>> {
        let mut users = self
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        users.entry(user_id).or_default().clone()
    }

    /// Waits for the user's lock. Collection and media work of that user happens under it.
    pub async fn lock(&self, user_id: i64) -> OwnedMutexGuard<UserSlot> {
        self.slot(user_id).lock_owned().await
    }

    /// The user's lock if nobody holds it now; for housekeeping that must never wait.
    pub fn try_lock(&self, user_id: i64) -> Option<OwnedMutexGuard<UserSlot>> {
        self.slot(user_id).try_lock_owned().ok()
    }

    /// The ids of users whose slot exists, for housekeeping such as idle-session expiry.
    pub fn known_users(&self) -> Vec<i64> {
        let users = self
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        users.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn different_users_do_not_wait_for_each_other() {
        let registry = Registry::default();
        let _alice = registry.lock(1).await;
        let bob = tokio::time::timeout(Duration::from_secs(1), registry.lock(2)).await;
        assert!(bob.is_ok(), "user 2 must not wait for user 1");
    }

    #[tokio::test]
    async fn one_user_is_serialized() {
        let registry = Arc::new(Registry::default());
        let first = registry.lock(7).await;
        let second = tokio::time::timeout(Duration::from_millis(100), registry.lock(7)).await;
        assert!(
            second.is_err(),
            "a second request of the same user must wait"
        );
        drop(first);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), registry.lock(7))
                .await
                .is_ok()
        );
    }
}
