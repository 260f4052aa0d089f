//! Choosing ids for imported objects (docs/sync-protocol.md#merge-rules,
//! docs/sync-protocol.md#imported-ids): keep the package's id when it is valid and free, otherwise
//! step by 999 as Anki does; never an id in the future.

const DAY_MS: i64 = 86_400_000;

/// Anki treats ids more than a day ahead of now as invalid and replaces them.
pub fn is_valid(id: i64, now_ms: i64) -> bool {
    id > 0 && id <= now_ms + DAY_MS
}

/// The package's id if valid, else `fallback()`; then +999 until `taken` says it is free.
pub fn resolve(
    id: i64,
    now_ms: i64,
    fallback: impl FnOnce() -> i64,
    taken: impl Fn(i64) -> bool,
) -> i64 {
    let mut candidate = if is_valid(id, now_ms) { id } else { fallback() };
    while taken(candidate) {
        candidate += 999;
    }
    candidate
}

/// A new id for an object the package's id cannot be kept for: now in ms, counting up.
pub fn fresh(now_ms: i64, taken: impl Fn(i64) -> bool) -> i64 {
    let mut candidate = now_ms;
    while taken(candidate) {
        candidate += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collisions_step_by_999_and_future_ids_are_replaced() {
        let now = 1_795_000_000_000;
        assert_eq!(
            resolve(100, now, || now, |id| id == 100 || id == 1099),
            2098
        );
        assert_eq!(resolve(now + 2 * DAY_MS, now, || now, |_| false), now);
        assert_eq!(resolve(-5, now, || now, |_| false), now);
        assert_eq!(fresh(now, |id| id < now + 3), now + 3);
    }
}
