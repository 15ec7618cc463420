//! Group commit of concurrent object writes.
//!
//! A commit costs one WAL append of every page its rows touched and one
//! fsync. Rows keyed by random values (object ids, observable values) touch
//! a different index page each, so the cost per object falls steeply with
//! the number of objects committed together. Concurrent `put_objects`
//! calls (several clients posting at once) are therefore committed
//! together: the first caller to find no commit running becomes the
//! leader and stores its own batch and every batch waiting at that moment
//! in one transaction, each batch in a savepoint of its own; callers that
//! arrive while a commit runs wait for the next one, which one of them
//! leads.
//!
//! What each caller gets is exactly what it would get alone: its own
//! outcomes, or its own error (its savepoint is rolled back and the other
//! batches of the group are stored); a failed commit fails every batch of
//! the group. A caller returns only after the commit that holds its batch
//! returned, so an acknowledged object is as durable as before.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::{NewObject, PutOutcome, Result, StoreError};

/// At most this many objects are committed together: a group waits for
/// one transaction, and a huge one would hold every writer back for long.
pub(crate) const MAX_GROUP_OBJECTS: usize = 20_000;

/// A batch waiting for a commit, owned (its caller is blocked on it).
pub(crate) struct Waiting {
    pub collection: String,
    pub objects: Vec<NewObject>,
    result: Mutex<Option<Result<Vec<PutOutcome>>>>,
}

impl Waiting {
    pub(crate) fn set(&self, r: Result<Vec<PutOutcome>>) {
        *lock(&self.result) = Some(r);
    }

    fn take(&self) -> Option<Result<Vec<PutOutcome>>> {
        lock(&self.result).take()
    }
}

#[derive(Default)]
struct State {
    /// A commit is running.
    leading: bool,
    waiting: Vec<Arc<Waiting>>,
}

/// The queue of batches and who commits them.
#[derive(Default)]
pub(crate) struct WriteQueue {
    state: Mutex<State>,
    changed: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in a leader leaves the queue usable: its followers find no
    // result and are told so (see `put`).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WriteQueue {
    /// Store `objects` in `collection`, committed together with whatever
    /// other batches are waiting. `commit` runs one transaction: the
    /// leader's own batch (borrowed) first, if any, then the waiting ones,
    /// setting each waiting batch's result, and returns the leader's.
    pub(crate) fn put(
        &self,
        collection: &str,
        objects: &[NewObject],
        commit: impl Fn(Option<(&str, &[NewObject])>, &[Arc<Waiting>]) -> Result<Vec<PutOutcome>>,
    ) -> Result<Vec<PutOutcome>> {
        let mut st = lock(&self.state);
        if !st.leading {
            // No commit running: lead one now, with the batches waiting
            // (if a commit just ended and its successor has not woken yet).
            st.leading = true;
            let group = take_group(&mut st.waiting, objects.len());
            drop(st);
            let _lead = Lead(self);
            return commit(Some((collection, objects)), &group);
        }
        // Wait for the running commit; the batch is copied, as the leader
        // of the next commit may be another thread.
        let me = Arc::new(Waiting {
            collection: collection.to_owned(),
            objects: objects.to_vec(),
            result: Mutex::new(None),
        });
        st.waiting.push(me.clone());
        loop {
            // Results are set before the commit's leader lets go of
            // `leading` (under this lock), so a batch taken by a commit
            // that ended has its result here.
            if let Some(r) = me.take() {
                return r;
            }
            if !st.leading {
                if !st.waiting.iter().any(|w| Arc::ptr_eq(w, &me)) {
                    return Err(StoreError::Backend(
                        "the commit that took this batch did not complete".into(),
                    ));
                }
                // Lead the next commit: this batch and those waiting with
                // it (or, past the group limit, those before it: then wait
                // for the one after).
                st.leading = true;
                let group = take_group(&mut st.waiting, 0);
                drop(st);
                {
                    let _lead = Lead(self);
                    let _ = commit(None, &group);
                }
                st = lock(&self.state);
                continue;
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Leading a commit; dropping it (also when the commit panics) lets the
/// next one start and wakes every waiting caller.
struct Lead<'a>(&'a WriteQueue);

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).leading = false;
        self.0.changed.notify_all();
    }
}

/// The waiting batches the next commit takes: in arrival order, while the
/// group stays within [`MAX_GROUP_OBJECTS`] (the first always goes).
/// `already` objects are in the group before them.
fn take_group(waiting: &mut Vec<Arc<Waiting>>, already: usize) -> Vec<Arc<Waiting>> {
    let mut n = already;
    let mut take = 0;
    for w in waiting.iter() {
        if n > 0 && n + w.objects.len() > MAX_GROUP_OBJECTS {
            break;
        }
        n += w.objects.len();
        take += 1;
    }
    waiting.drain(..take).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A batch naming its caller: one object whose id is the caller's number.
    fn batch(n: usize) -> Vec<NewObject> {
        vec![NewObject {
            id: n.to_string(),
            ..NewObject::default()
        }]
    }

    /// What a commit gives a batch: its caller's number back, or an error
    /// for callers whose number is a multiple of 5.
    fn outcome(objects: &[NewObject]) -> Result<Vec<PutOutcome>> {
        let n: i64 = objects[0].id.parse().unwrap_or(-1);
        if n % 5 == 0 {
            return Err(StoreError::Invalid(format!("batch {n}")));
        }
        Ok(vec![PutOutcome::Added(n)])
    }

    #[test]
    fn callers_waiting_together_share_a_commit_and_get_their_own_results() {
        let queue = Arc::new(WriteQueue::default());
        let commits = Arc::new(AtomicUsize::new(0));
        let largest = Arc::new(AtomicUsize::new(0));
        let callers = 24;
        let handles: Vec<_> = (1..=callers)
            .map(|n| {
                let (queue, commits, largest) = (queue.clone(), commits.clone(), largest.clone());
                std::thread::spawn(move || {
                    queue.put("c", &batch(n), |mine, waiting| {
                        commits.fetch_add(1, Ordering::SeqCst);
                        let size = waiting.len() + usize::from(mine.is_some());
                        largest.fetch_max(size, Ordering::SeqCst);
                        // A commit takes a while: others queue behind it.
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        for w in waiting {
                            w.set(outcome(&w.objects));
                        }
                        mine.map_or(Ok(Vec::new()), |(_, o)| outcome(o))
                    })
                })
            })
            .collect();
        for (n, h) in (1..=callers).zip(handles) {
            let got = h.join().unwrap_or_else(|_| panic!("caller {n} panicked"));
            match got {
                Ok(out) => assert_eq!(out, vec![PutOutcome::Added(n as i64)]),
                Err(e) => {
                    assert_eq!(n % 5, 0, "caller {n}: {e}");
                    assert_eq!(e.to_string(), format!("invalid argument: batch {n}"));
                }
            }
        }
        assert!(
            largest.load(Ordering::SeqCst) > 1,
            "no commit held two batches"
        );
        assert!(commits.load(Ordering::SeqCst) < callers);
    }

    #[test]
    fn a_group_stays_within_its_object_limit() {
        let big = |n| {
            Arc::new(Waiting {
                collection: "c".into(),
                objects: vec![NewObject::default(); n],
                result: Mutex::new(None),
            })
        };
        let mut waiting = vec![big(MAX_GROUP_OBJECTS - 10), big(20), big(5)];
        // The first always goes; the second would pass the limit.
        assert_eq!(take_group(&mut waiting, 0).len(), 1);
        assert_eq!(waiting.len(), 2);
        // With a leader's batch of 10 000, 20 and 5 more fit.
        assert_eq!(take_group(&mut waiting, 10_000).len(), 2);
        assert!(waiting.is_empty());
        // A leader's batch already at the limit takes nothing.
        let mut waiting = vec![big(1)];
        assert!(take_group(&mut waiting, MAX_GROUP_OBJECTS).is_empty());
    }
}
