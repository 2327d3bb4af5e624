//! Expectations (spec §6.6): the pods/PVCs this controller created or deleted and the pod versions
//! it wrote, remembered until the informer cache shows them, so a stale cache never makes it create
//! a pod twice or act on a pod it already changed. Entries expire after a timeout (a leaked
//! expectation must not wedge a CloneSet, unlike OpenKruise without its force gate).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an unobserved expectation blocks its CloneSet.
pub const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(300);

/// The object kind an expectation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A pod.
    Pod,
    /// A PersistentVolumeClaim.
    Pvc,
}

/// Create or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Waiting to see the object in the cache.
    Create,
    /// Waiting to see the object gone (or terminating) in the cache.
    Delete,
}

/// What the cache says about an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Not in the cache.
    Absent,
    /// In the cache, with a deletionTimestamp.
    Deleting,
    /// In the cache.
    Present,
}

#[derive(Debug, Default)]
struct Entry {
    scale: HashMap<(Kind, Op, String), Instant>,
    versions: HashMap<String, (String, Instant)>,
}

/// Process-wide expectations, keyed by `namespace/name` of the CloneSet.
#[derive(Debug, Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Entry>>,
}

fn rv_reached(cached: &str, written: &str) -> bool {
    match (cached.parse::<u64>(), written.parse::<u64>()) {
        (Ok(c), Ok(w)) => c >= w,
        _ => cached == written,
    }
}

impl Expectations {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> R) -> R {
        // A poisoned lock only means another reconcile panicked; the map itself stays usable.
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Remember that `name` is about to be created or deleted.
    pub fn expect(&self, key: &str, kind: Kind, op: Op, name: &str, now: Instant) {
        self.with(|m| {
            m.entry(key.to_string())
                .or_default()
                .scale
                .insert((kind, op, name.to_string()), now);
        });
    }

    /// Forget an expectation whose API call failed.
    pub fn forget(&self, key: &str, kind: Kind, op: Op, name: &str) {
        self.with(|m| {
            if let Some(e) = m.get_mut(key) {
                e.scale.remove(&(kind, op, name.to_string()));
            }
        });
    }

    /// Remember the resourceVersion a write of pod `name` returned.
    pub fn expect_version(&self, key: &str, name: &str, rv: &str, now: Instant) {
        self.with(|m| {
            m.entry(key.to_string())
                .or_default()
                .versions
                .insert(name.to_string(), (rv.to_string(), now));
        });
    }

    /// Drops everything about a CloneSet (it was deleted).
    pub fn clear(&self, key: &str) {
        self.with(|m| {
            m.remove(key);
        });
    }

    /// Prunes the expectations the cache now satisfies (and expired ones); returns how long to wait
    /// if any remain. `seen` looks an object up in the cache; `cached_rv` gives a pod's cached
    /// resourceVersion (None if the pod is gone).
    pub fn pending(
        &self,
        key: &str,
        now: Instant,
        seen: impl Fn(Kind, &str) -> Seen,
        cached_rv: impl Fn(&str) -> Option<String>,
    ) -> Option<Duration> {
        self.with(|m| {
            let e = m.get_mut(key)?;
            let expired =
                |since: &Instant| now.saturating_duration_since(*since) >= EXPECTATION_TIMEOUT;
            e.scale.retain(|(kind, op, name), since| {
                let done = match (op, seen(*kind, name)) {
                    (Op::Create, Seen::Absent) => false,
                    (Op::Create, _) => true,
                    (Op::Delete, Seen::Present) => false,
                    (Op::Delete, _) => true,
                };
                if !done && expired(since) {
                    tracing::warn!(cloneset = key, ?kind, ?op, name, "expectation timed out");
                }
                !done && !expired(since)
            });
            e.versions.retain(|name, (rv, since)| {
                let done = cached_rv(name).is_none_or(|c| rv_reached(&c, rv));
                !done && !expired(since)
            });
            let oldest = e
                .scale
                .values()
                .chain(e.versions.values().map(|(_, t)| t))
                .min()
                .copied()?;
            let left = EXPECTATION_TIMEOUT.saturating_sub(now.saturating_duration_since(oldest));
            Some(left.min(Duration::from_secs(5)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_and_delete_expectations() {
        let e = Expectations::default();
        let t0 = Instant::now();
        e.expect("ns/cs", Kind::Pod, Op::Create, "cs-a", t0);
        e.expect("ns/cs", Kind::Pod, Op::Delete, "cs-b", t0);
        let none_rv = |_: &str| None;
        // Cache has neither change yet.
        let stale = |_: Kind, n: &str| {
            if n == "cs-b" {
                Seen::Present
            } else {
                Seen::Absent
            }
        };
        assert!(e.pending("ns/cs", t0, stale, none_rv).is_some());
        // Created pod seen, deleted pod terminating: satisfied.
        let fresh = |_: Kind, n: &str| {
            if n == "cs-b" {
                Seen::Deleting
            } else {
                Seen::Present
            }
        };
        assert_eq!(e.pending("ns/cs", t0, fresh, none_rv), None);
        // Failed call rolled back.
        e.expect("ns/cs", Kind::Pvc, Op::Create, "data-cs-a", t0);
        e.forget("ns/cs", Kind::Pvc, Op::Create, "data-cs-a");
        assert_eq!(e.pending("ns/cs", t0, stale, none_rv), None);
        // Timeout.
        e.expect("ns/cs", Kind::Pod, Op::Create, "cs-c", t0);
        let later = t0 + EXPECTATION_TIMEOUT;
        assert_eq!(e.pending("ns/cs", later, stale, none_rv), None);
        // Other keys are independent.
        assert_eq!(e.pending("ns/other", t0, stale, none_rv), None);
    }

    #[test]
    fn version_expectations() {
        let e = Expectations::default();
        let t0 = Instant::now();
        e.expect_version("ns/cs", "cs-a", "105", t0);
        let any = |_: Kind, _: &str| Seen::Present;
        assert!(
            e.pending("ns/cs", t0, any, |_| Some("100".into()))
                .is_some()
        );
        assert_eq!(e.pending("ns/cs", t0, any, |_| Some("105".into())), None);
        e.expect_version("ns/cs", "cs-a", "105", t0);
        assert_eq!(e.pending("ns/cs", t0, any, |_| None), None, "pod gone");
        e.expect_version("ns/cs", "cs-a", "opaque-2", t0);
        assert!(
            e.pending("ns/cs", t0, any, |_| Some("opaque-1".into()))
                .is_some()
        );
        assert_eq!(
            e.pending("ns/cs", t0, any, |_| Some("opaque-2".into())),
            None
        );
    }
}
