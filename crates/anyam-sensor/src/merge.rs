//! Several inputs as one stream: a k-way merge by event time for finite inputs, arrival order (one thread per input) when any input is followed.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use crate::event::Record;
use crate::input::{Input, StatsHandle};

enum Mode {
    /// Finite inputs: the head record of each, the earliest taken first.
    Heads {
        inputs: Vec<Input>,
        heads: Vec<Option<Record>>,
        primed: bool,
    },
    /// Followed inputs: whatever arrives first goes first.
    Arrival {
        rx: Receiver<Record>,
        threads: Vec<JoinHandle<()>>,
    },
}

/// The merged stream of several inputs; see [`merge`].
pub struct Merged {
    mode: Mode,
    handles: Vec<StatsHandle>,
}

/// Merges inputs into one stream of records.
///
/// When no input is followed, the result is ordered by event time
/// (`observation.first`): each input is already in (nearly) time order, so
/// taking the earliest head of all inputs is a k-way merge. Ties go to the
/// input listed first; malformed and skipped reports have no time and go
/// out as soon as they are at the head of their input.
///
/// When any input is followed, the inputs never end by themselves, so
/// waiting for every input's next record would stall the stream behind the
/// quietest sensor. Each input is then read on its own thread and records
/// are delivered in arrival order; the stream ends when every input has
/// ended (the shared shutdown flag ends followed inputs).
pub fn merge(inputs: Vec<Input>) -> Merged {
    let handles = inputs.iter().map(Input::stats_handle).collect();
    let follow = inputs.iter().any(Input::is_followed);
    let mode = if follow {
        let (tx, rx) = sync_channel::<Record>(4096);
        let threads = inputs
            .into_iter()
            .map(|input| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for r in input {
                        if tx.send(r).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Mode::Arrival { rx, threads }
    } else {
        let heads = inputs.iter().map(|_| None).collect();
        Mode::Heads {
            inputs,
            heads,
            primed: false,
        }
    };
    Merged { mode, handles }
}

impl Merged {
    /// Each input's label and counters.
    pub fn stats(&self) -> Vec<StatsHandle> {
        self.handles.clone()
    }
}

impl Iterator for Merged {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        match &mut self.mode {
            Mode::Arrival { rx, threads } => match rx.recv() {
                Ok(r) => Some(r),
                Err(_) => {
                    for t in threads.drain(..) {
                        // A reader thread that panicked has already lost its
                        // records; the others' are delivered.
                        let _ = t.join();
                    }
                    None
                }
            },
            Mode::Heads {
                inputs,
                heads,
                primed,
            } => {
                if !*primed {
                    for (h, i) in heads.iter_mut().zip(inputs.iter_mut()) {
                        *h = i.next();
                    }
                    *primed = true;
                }
                let mut best: Option<(usize, Option<i128>)> = None;
                for (i, h) in heads.iter().enumerate() {
                    let Some(r) = h else { continue };
                    let t = r.time();
                    if t.is_none() {
                        best = Some((i, None));
                        break;
                    }
                    match best {
                        Some((_, Some(bt))) if bt <= t.unwrap_or(i128::MIN) => {}
                        _ => best = Some((i, t)),
                    }
                }
                let (i, _) = best?;
                let r = heads[i].take();
                heads[i] = inputs[i].next();
                r
            }
        }
    }
}
