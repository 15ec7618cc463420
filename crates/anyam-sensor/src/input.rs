//! An opened input: drives its line sources, the format's parser and (for Zeek) the joiner, and yields records one at a time.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyam_pattern::observations::Observation;

use crate::event::{Counters, Event, Malformed, Record, Stats};
use crate::join::{Frag, Join};
use crate::source::{Finite, LineSource, Poll, open_path};
use crate::zeek::{self, Header, Mapped, Staged};
use crate::{Error, Format, InputSpec, Options, eve, stixin};

struct ZFile {
    src: Box<dyn LineSource>,
    header: Header,
    default_log: Option<String>,
    peeked: Option<Mapped>,
    ended: bool,
}

struct ZeekState {
    files: Vec<ZFile>,
    join: Join,
    /// Whether connections are cached for files.log joins: not when every
    /// file is, by name, a log that cannot hold files records (a lone
    /// conn.log), which spares the cache on the hottest path.
    keep_conns: bool,
}

enum Kind {
    Eve(Box<dyn LineSource>),
    Stix(Box<dyn LineSource>),
    Zeek(Box<ZeekState>),
}

/// What one step of reading achieved.
enum Step {
    Progress,
    Idle,
    End,
}

/// An opened input: an iterator of [`Record`]s in input order. Finite
/// inputs end at the end of their data; followed inputs end when the
/// shutdown flag is set (after emitting what the Zeek joiner still holds).
pub struct Input {
    label: Arc<str>,
    kind: Kind,
    opts: Options,
    counters: Arc<Counters>,
    queue: VecDeque<Record>,
    buf: Vec<u8>,
    index: usize,
    done: bool,
    idle_since: Option<Instant>,
    flushed_idle: bool,
}

fn sources(spec: &InputSpec, opts: &Options) -> Result<Vec<Box<dyn LineSource>>, Error> {
    let Some(path) = &spec.path else {
        return Ok(vec![Box::new(Finite::stdin())]);
    };
    let open = |p: &Path| {
        open_path(p, opts.follow).map_err(|source| Error::Open {
            path: p.display().to_string(),
            source,
        })
    };
    if spec.format == Format::Zeek && path.is_dir() {
        let rd = std::fs::read_dir(path).map_err(|source| Error::Open {
            path: path.display().to_string(),
            source,
        })?;
        let mut files: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(".log") || n.ends_with(".log.gz"))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::NoLogs(path.display().to_string()));
        }
        return files.iter().map(|p| open(p)).collect();
    }
    if !opts.follow && !path.exists() {
        return Err(Error::Open {
            path: path.display().to_string(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    Ok(vec![open(path)?])
}

/// Opens an input.
pub fn open(spec: &InputSpec, opts: &Options) -> Result<Input, Error> {
    let mut srcs = sources(spec, opts)?;
    let kind = match spec.format {
        Format::Zeek => {
            let files = srcs
                .drain(..)
                .map(|src| ZFile {
                    default_log: zeek::log_of_file(Path::new(src.file().as_ref())),
                    src,
                    header: Header::default(),
                    peeked: None,
                    ended: false,
                })
                .collect::<Vec<_>>();
            let keep_conns = files.iter().any(|f| {
                !matches!(
                    f.default_log.as_deref(),
                    Some("conn" | "dns" | "http" | "ssl" | "x509")
                )
            });
            let delay = i128::try_from(opts.join_delay.as_nanos()).unwrap_or(i128::MAX);
            Kind::Zeek(Box::new(ZeekState {
                files,
                join: Join::new(delay, opts.join_cache),
                keep_conns,
            }))
        }
        Format::Eve | Format::Stix => {
            let src = srcs
                .pop()
                .ok_or_else(|| Error::Spec("no file to read".into()))?;
            if spec.format == Format::Eve {
                Kind::Eve(src)
            } else {
                Kind::Stix(src)
            }
        }
    };
    Ok(Input {
        label: Arc::from(spec.to_string()),
        kind,
        opts: opts.clone(),
        counters: Arc::new(Counters::default()),
        queue: VecDeque::new(),
        buf: Vec::with_capacity(4096),
        index: 0,
        done: false,
        idle_since: None,
        flushed_idle: false,
    })
}

impl Input {
    /// The input's label, e.g. `zeek:/var/log/zeek`.
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// Whether the input follows its files (and so never ends by itself).
    pub fn is_followed(&self) -> bool {
        self.opts.follow
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// A handle on the counters that stays valid after the input is moved
    /// into [`crate::merge`] or another thread.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            label: self.label.clone(),
            counters: self.counters.clone(),
        }
    }

    fn malformed(&mut self, file: &Arc<str>, line: u64, reason: String) {
        self.queue.push_back(Record::Malformed(Malformed {
            input: self.label.clone(),
            file: file.clone(),
            line,
            reason,
        }));
    }

    fn skipped(&mut self, file: &Arc<str>, line: u64, what: String) {
        self.queue.push_back(Record::Skipped {
            input: self.label.clone(),
            file: file.clone(),
            line,
            what,
        });
    }

    fn event(&mut self, file: Arc<str>, line: u64, mut observation: Observation) {
        observation.index = self.index;
        self.index += 1;
        self.queue.push_back(Record::Event(Event {
            observation,
            input: self.label.clone(),
            file,
            line,
        }));
    }

    fn staged(&mut self, s: Staged) {
        let obs = Observation {
            id: None,
            index: 0,
            first: s.first,
            last: s.last,
            count: 1,
            objects: s.objs.list,
            embedded: true,
        };
        self.event(s.file, s.line, obs);
    }

    /// Reads the next line of `src` into `self.buf`.
    fn poll(
        src: &mut dyn LineSource,
        buf: &mut Vec<u8>,
        counters: &Counters,
    ) -> Result<Poll, String> {
        match src.poll_line(buf) {
            Ok(p) => {
                if matches!(p, Poll::Line(_)) {
                    counters.lines.fetch_add(1, Ordering::Relaxed);
                }
                Ok(p)
            }
            Err(e) => Err(format!("read error: {e}")),
        }
    }

    fn step_lines(&mut self) -> Step {
        let mut buf = std::mem::take(&mut self.buf);
        let step = self.step_lines_with(&mut buf);
        self.buf = buf;
        step
    }

    fn step_lines_with(&mut self, buf: &mut Vec<u8>) -> Step {
        let (src, is_eve) = match &mut self.kind {
            Kind::Eve(s) => (s, true),
            Kind::Stix(s) => (s, false),
            Kind::Zeek(_) => return Step::End,
        };
        let file = src.file().clone();
        let line = match Self::poll(src.as_mut(), buf, &self.counters) {
            Ok(Poll::Line(n)) => n,
            Ok(Poll::Idle) => return Step::Idle,
            Ok(Poll::End) => return Step::End,
            Err(e) => {
                self.malformed(&file, 0, e);
                return Step::End;
            }
        };
        let text = match std::str::from_utf8(buf) {
            Ok(t) => t.trim_end(),
            Err(e) => {
                self.malformed(&file, line, format!("not UTF-8 text: {e}"));
                return Step::Progress;
            }
        };
        if text.trim_start().is_empty() {
            return Step::Progress;
        }
        if is_eve {
            match eve::read_line(text) {
                Ok(eve::Eved::Event { first, last, objs }) => {
                    let obs = Observation {
                        id: None,
                        index: 0,
                        first,
                        last,
                        count: 1,
                        objects: objs.list,
                        embedded: true,
                    };
                    self.event(file, line, obs);
                }
                Ok(eve::Eved::Skip(w)) => self.skipped(&file, line, w),
                Err(e) => self.malformed(&file, line, e),
            }
        } else {
            let clock = self.opts.clock.clone();
            match stixin::read_line(text, || clock()) {
                Ok(stixin::Stixed::Observations(list)) => {
                    for o in list {
                        self.event(file.clone(), line, o);
                    }
                }
                Ok(stixin::Stixed::Skip(w)) => self.skipped(&file, line, w),
                Err(e) => self.malformed(&file, line, e),
            }
        }
        Step::Progress
    }

    fn step_zeek(&mut self) -> Step {
        let Kind::Zeek(z) = &mut self.kind else {
            return Step::End;
        };
        let mut reports: Vec<Record> = Vec::new();
        let mut progress = false;
        for f in z
            .files
            .iter_mut()
            .filter(|f| !f.ended && f.peeked.is_none())
        {
            loop {
                let file = f.src.file().clone();
                let line = match Self::poll(f.src.as_mut(), &mut self.buf, &self.counters) {
                    Ok(Poll::Line(n)) => n,
                    Ok(Poll::Idle) => break,
                    Ok(Poll::End) => {
                        f.ended = true;
                        progress = true;
                        break;
                    }
                    Err(e) => {
                        reports.push(Record::Malformed(Malformed {
                            input: self.label.clone(),
                            file,
                            line: 0,
                            reason: e,
                        }));
                        f.ended = true;
                        progress = true;
                        break;
                    }
                };
                progress = true;
                let text = match std::str::from_utf8(&self.buf) {
                    Ok(t) => t,
                    Err(e) => {
                        reports.push(Record::Malformed(Malformed {
                            input: self.label.clone(),
                            file,
                            line,
                            reason: format!("not UTF-8 text: {e}"),
                        }));
                        continue;
                    }
                };
                let keep = z.keep_conns;
                match zeek::read_line(
                    &mut f.header,
                    f.default_log.as_deref(),
                    keep,
                    text,
                    &file,
                    line,
                ) {
                    None => {}
                    Some(Err(reason)) => reports.push(Record::Malformed(Malformed {
                        input: self.label.clone(),
                        file,
                        line,
                        reason,
                    })),
                    Some(Ok(Mapped::Skip(what))) => reports.push(Record::Skipped {
                        input: self.label.clone(),
                        file,
                        line,
                        what,
                    }),
                    Some(Ok(m)) => {
                        f.peeked = Some(m);
                        break;
                    }
                }
            }
        }
        self.queue.extend(reports);
        // Merge the files by time: take the earliest head, but only when
        // every file that can still produce has one (a followed file that is
        // idle does not hold the others back: follow mode delivers records
        // as they arrive).
        let mut out = Vec::new();
        loop {
            let waiting = z
                .files
                .iter()
                .any(|f| !f.ended && f.peeked.is_none() && !self.opts.follow);
            if waiting {
                break;
            }
            let best = z
                .files
                .iter()
                .enumerate()
                .filter_map(|(i, f)| f.peeked.as_ref().and_then(Mapped::time).map(|t| (t, i)))
                .min();
            let Some((t, i)) = best else { break };
            let Some(m) = z.files[i].peeked.take() else {
                break;
            };
            z.join.tick(t, &mut out);
            feed(&mut z.join, m, &mut out);
            progress = true;
            if !self.opts.follow {
                break;
            }
        }
        let all_ended = z.files.iter().all(|f| f.ended && f.peeked.is_none());
        if all_ended {
            z.join.flush(&mut out);
        }
        self.counters.set_join_state(z.join.size() as u64);
        for s in out {
            self.staged(s);
        }
        if all_ended {
            Step::End
        } else if progress {
            Step::Progress
        } else {
            Step::Idle
        }
    }

    fn flush_join(&mut self) {
        if let Kind::Zeek(z) = &mut self.kind {
            let mut out = Vec::new();
            z.join.flush(&mut out);
            self.counters.set_join_state(z.join.size() as u64);
            for s in out {
                self.staged(s);
            }
        }
    }
}

/// Feeds one mapped Zeek record to the joiner.
fn feed(join: &mut Join, m: Mapped, out: &mut Vec<Staged>) {
    match m {
        Mapped::Ready(s) => out.push(s),
        Mapped::Conn(s, uid) => {
            out.push(s);
            if let Some((k, conn)) = uid {
                join.provide(k, Frag::Conn(conn), None, out);
            }
        }
        Mapped::Wait(s, keys) => join.wait(s, keys, out),
        Mapped::Cert(s, Some(key)) => {
            let frag = s.objs.list.iter().map(|(_, v)| v.clone()).collect();
            join.provide(key, Frag::Values(frag), Some(s), out);
        }
        Mapped::Cert(s, None) => out.push(s),
        Mapped::Skip(_) => {}
    }
}

impl Iterator for Input {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            if let Some(r) = self.queue.pop_front() {
                self.counters.count(&r);
                return Some(r);
            }
            if self.done {
                return None;
            }
            if self.opts.shutdown.load(Ordering::Relaxed) {
                self.flush_join();
                self.done = true;
                continue;
            }
            let step = match self.kind {
                Kind::Zeek(_) => self.step_zeek(),
                _ => self.step_lines(),
            };
            match step {
                Step::Progress => {
                    self.idle_since = None;
                    self.flushed_idle = false;
                }
                Step::End => {
                    self.flush_join();
                    self.done = true;
                }
                Step::Idle => {
                    // A followed Zeek input that has gone quiet for the join
                    // delay (wall time) emits what its joiner holds: log time
                    // only advances with new records.
                    let since = *self.idle_since.get_or_insert_with(Instant::now);
                    if !self.flushed_idle && since.elapsed() >= self.opts.join_delay {
                        self.flush_join();
                        self.flushed_idle = true;
                    }
                    if self.queue.is_empty() {
                        std::thread::sleep(self.opts.poll_interval);
                    }
                }
            }
        }
    }
}

/// A shareable handle on an input's counters.
#[derive(Clone, Debug)]
pub struct StatsHandle {
    label: Arc<str>,
    counters: Arc<Counters>,
}

impl StatsHandle {
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }
}
