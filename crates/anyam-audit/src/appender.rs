//! [`Appender`]: a cloneable handle that queues events for one writer
//! thread, which commits whatever has queued up as one transaction (group
//! commit). A request handler pays for a queue push, not for an fsync.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::log::Inner;
use crate::{AuditError, AuditLog, Event};

/// Tuning knobs of [`AuditLog::appender`].
#[derive(Debug, Clone)]
pub struct AppenderOptions {
    /// Most events committed in one transaction. Bigger batches amortize
    /// the fsync further but make a waiting caller wait longer.
    pub max_batch: usize,
    /// Most events waiting in the queue; `append` blocks beyond it, so a
    /// flood cannot grow memory without bound (back-pressure instead of
    /// dropping audit records).
    pub max_queued: usize,
    /// Least time between the starts of two commits: a busy log commits
    /// what queued up meanwhile as one batch, at most once per `linger`,
    /// instead of one small batch after another (each commit rewrites the
    /// tree's edge pages and syncs). An event arriving after a quiet
    /// spell is committed at once. Zero: commit as soon as the last
    /// commit ends.
    pub linger: Duration,
}

impl Default for AppenderOptions {
    fn default() -> Self {
        AppenderOptions {
            max_batch: 4096,
            max_queued: 65_536,
            linger: Duration::ZERO,
        }
    }
}

/// The outcome of one queued event: its sequence number, or why its batch
/// failed (a string, because one error is shared by the whole batch).
type Outcome = Result<u64, String>;

#[derive(Default)]
struct Queue {
    pending: VecDeque<(Event, Arc<OnceLock<Outcome>>)>,
    /// Events handed to `append` so far, and those whose batch finished
    /// (committed or failed). `flush` waits for the second to reach the
    /// first as it was when `flush` was called.
    queued: u64,
    done: u64,
    /// Batches finished (committed or failed).
    batches: u64,
    /// The error of the latest failed batch not yet reported by `flush`.
    unreported: Option<String>,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer thread (work arrived, or stop).
    work: Condvar,
    /// Wakes waiters (a batch finished, or room in the queue).
    done: Condvar,
    opts: AppenderOptions,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The last clone of an [`Appender`] stops the writer thread, after it has
/// committed everything queued.
struct Owner {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A cloneable handle to the log's group-commit writer. See the module
/// documentation.
#[derive(Clone)]
pub struct Appender {
    owner: Arc<Owner>,
}

/// A queued event. [`Receipt::wait`] returns once it is durable.
#[must_use = "an audit record is only durable once the receipt (or a flush) says so"]
pub struct Receipt {
    slot: Arc<OnceLock<Outcome>>,
    shared: Arc<Shared>,
}

impl Receipt {
    /// Block until the event's batch committed; its sequence number.
    pub fn wait(self) -> Result<u64, AuditError> {
        let mut q = self.shared.lock();
        loop {
            if let Some(outcome) = self.slot.get() {
                return outcome.clone().map_err(AuditError::Appender);
            }
            q = self.shared.done.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The sequence number if the event is already committed.
    pub fn try_seq(&self) -> Option<Result<u64, AuditError>> {
        self.slot
            .get()
            .map(|o| o.clone().map_err(AuditError::Appender))
    }
}

impl AuditLog {
    /// Start a group-commit writer thread for this log. Direct appends
    /// through the [`AuditLog`] still work alongside it; both serialize on
    /// the writer connection.
    pub fn appender(&self, opts: AppenderOptions) -> Result<Appender, AuditError> {
        // Refuse up front rather than fail every receipt.
        self.inner.check_writable()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            opts,
        });
        let inner = self.inner.clone();
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("anyam-audit-writer".into())
            .spawn(move || writer_loop(&inner, &for_thread))
            .map_err(|e| AuditError::Appender(format!("starting the writer thread: {e}")))?;
        Ok(Appender {
            owner: Arc::new(Owner {
                shared,
                thread: Some(thread),
            }),
        })
    }
}

impl Appender {
    /// Queue an event. Blocks only while the queue is full.
    pub fn append(&self, event: Event) -> Receipt {
        let shared = &self.owner.shared;
        let slot = Arc::new(OnceLock::new());
        let mut q = shared.lock();
        while q.pending.len() >= shared.opts.max_queued.max(1) {
            q = shared.done.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        q.pending.push_back((event, slot.clone()));
        q.queued += 1;
        drop(q);
        shared.work.notify_one();
        Receipt {
            slot,
            shared: shared.clone(),
        }
    }

    /// How many batches the writer has finished (committed or failed).
    pub fn batches(&self) -> u64 {
        self.owner.shared.lock().batches
    }

    /// Block until every event queued before this call is committed. Fails
    /// if a batch failed since the previous `flush` (those events are not
    /// in the log; their receipts say so too).
    pub fn flush(&self) -> Result<(), AuditError> {
        let shared = &self.owner.shared;
        let mut q = shared.lock();
        let target = q.queued;
        while q.done < target {
            q = shared.done.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        match q.unreported.take() {
            Some(e) => Err(AuditError::Appender(e)),
            None => Ok(()),
        }
    }
}

fn writer_loop(inner: &Inner, shared: &Shared) {
    let mut events = Vec::new();
    let mut slots = Vec::new();
    let mut last_start: Option<Instant> = None;
    loop {
        if let Some(t) = last_start {
            let next = t + shared.opts.linger;
            let now = Instant::now();
            if now < next {
                std::thread::sleep(next - now);
            }
        }
        {
            let mut q = shared.lock();
            while q.pending.is_empty() && !q.stop {
                q = shared.work.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.pending.is_empty() {
                return;
            }
            let n = q.pending.len().min(shared.opts.max_batch.max(1));
            for (e, s) in q.pending.drain(..n) {
                events.push(e);
                slots.push(s);
            }
        }
        // Room in the queue again.
        shared.done.notify_all();
        last_start = Some(Instant::now());
        let result = inner.append(&events);
        let mut q = shared.lock();
        match result {
            Ok(range) => {
                for (seq, slot) in range.zip(slots.drain(..)) {
                    let _ = slot.set(Ok(seq));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for slot in slots.drain(..) {
                    let _ = slot.set(Err(msg.clone()));
                }
                q.unreported = Some(msg);
            }
        }
        q.done += events.len() as u64;
        q.batches += 1;
        events.clear();
        drop(q);
        shared.done.notify_all();
    }
}
