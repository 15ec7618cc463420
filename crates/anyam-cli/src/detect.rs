//! `anyam detect`: match sensor events against every loaded indicator and write alerts.
//!
//! Indicators come from the node's store (the newest version of every
//! indicator in every collection, then followed through the store's
//! indicator change sequence, so that additions, new versions,
//! revocations and deletions take effect within about half a second, also
//! while a server writes the store from another process) or, for
//! standalone use, from a file of STIX objects. Events come from one or
//! more typed inputs, merged by time. Each hit becomes one alert JSON
//! line; a summary JSON object goes to standard error at the end.
//!
//! An alert names the matched indicator's Admiralty rating (`admiralty`,
//! `admiralty_description`) when the indicator carries one, and the
//! summary counts alerts by rating. Sightings written to the store are
//! recorded in the node's audit log (see [`sightings`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyam_detect::{Engine, Hit, Indicator, Normalize, Options, Validity};
use anyam_sensor::{Event, InputSpec, Record};
use anyam_store::Store;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::{DataArgs, EXIT_REJECTED, audit, node, sightings, transfer, trust};

/// How often the store's indicator change sequence is read.
const POLL: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, ValueEnum)]
pub enum ValidityArg {
    /// Check valid_from/valid_until against the event's time (replays hunt
    /// retroactively).
    Observation,
    /// Check against the wall clock.
    WallClock,
    /// Do not check.
    Ignore,
}

#[derive(Args)]
pub struct DetectArgs {
    /// An input: zeek:PATH (a log file or a directory of logs), eve:PATH,
    /// stix:PATH; PATH `-` reads standard input (a bare `-` is stix:-).
    /// Repeat for several inputs; they are merged by event time.
    #[arg(long = "input", short = 'i', required = true)]
    inputs: Vec<String>,
    /// Keep reading inputs as they grow, across log rotation (like tail -F),
    /// until interrupted.
    #[arg(long)]
    follow: bool,
    /// Read indicators from this file of STIX objects (bundle, JSON array
    /// or JSON lines) instead of the node's store.
    #[arg(long)]
    indicators: Option<PathBuf>,
    /// Write alerts (JSON lines) here instead of standard output.
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// Write one alert per indicator per this many seconds of event time;
    /// repeats in between are counted, not written. 0 writes every hit.
    #[arg(long, default_value_t = 0)]
    dedup_secs: u64,
    /// The longest span, in seconds, over which a pattern across several
    /// observations is matched (the window of patterns without WITHIN).
    #[arg(long, default_value_t = 3600)]
    max_window_secs: u64,
    /// Fold values before matching, on indicators and events alike:
    /// comma-separated `hashes` (hex digests in lower case), `domains`
    /// (domain names in lower case, no trailing dot), `ipv6` (RFC 5952
    /// form), or `all`. Off by default: STIX patterning compares exactly.
    #[arg(long, default_value = "none", value_parser = parse_normalize)]
    normalize: Normalize,
    /// What an indicator's validity window is checked against.
    #[arg(long, value_enum, default_value = "observation")]
    validity: ValidityArg,
    /// Do not record hits as STIX sightings in the node (store mode only;
    /// with --indicators no sightings are written).
    #[arg(long)]
    no_sightings: bool,
    /// The collection (alias or id, in the default API root) sightings are
    /// written to; created, granted to the host organization only, when absent.
    #[arg(long, default_value = "sightings")]
    sightings_collection: String,
    /// Marking definition id(s) put on sightings; `none` for none.
    /// [default: TLP 2.0 AMBER+STRICT, the host organization only]
    #[arg(long = "sightings-marking")]
    sightings_markings: Vec<String>,
    /// The identity (organization) that owns the sensors, for the
    /// sightings' where_sighted_refs [default: the node's identity].
    #[arg(long)]
    where_sighted: Option<String>,
    /// Store each hit's observations as observed-data (with their SCOs)
    /// and cite them in the sighting (at most 100 per sighting).
    #[arg(long)]
    keep_observed_data: bool,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    data: DataArgs,
}

fn parse_normalize(s: &str) -> std::result::Result<Normalize, String> {
    Normalize::parse(s)
}

/// Where indicators come from.
enum Source {
    File,
    Store {
        store: Arc<dyn Store>,
        seq: i64,
        last_poll: Instant,
        view: HostView,
    },
}

/// Which of the node's indicators detection may use: those the release
/// decision would give the host organization (the detector works for it,
/// as no named user), so that TLP:RED indicators meant for named people
/// and indicators with markings nobody accepted never reach alerts or
/// sightings. Collection grants do not apply: detection is the node's own
/// use of what was shared with it.
struct HostView {
    rules: anyam_policy::Rules,
}

impl HostView {
    fn admits(&self, v: &Value) -> bool {
        let label = anyam_policy::label_of(v);
        let version = anyam_policy::Version {
            label: Some(&label),
            collection: "",
            object_type: "indicator",
        };
        let reader = anyam_policy::Reader::Local {
            user: "",
            org: &self.rules.host_org,
            access: anyam_store::Access {
                read: true,
                write: false,
            },
        };
        anyam_policy::decide_release(
            &version,
            &reader,
            anyam_policy::Path::Detection,
            &self.rules,
        )
        .is_ok()
    }
}

/// The Admiralty fields of the loaded indicators that carry a rating, by
/// indicator id ([`transfer::admiralty_fields`]).
type Ratings = HashMap<String, Value>;

/// Remember (or forget) the rating of an indicator just loaded.
fn rate(ratings: &mut Ratings, v: &Value) {
    let Some(id) = v.get("id").and_then(Value::as_str) else {
        return;
    };
    match transfer::admiralty_fields(v) {
        Some(f) => {
            ratings.insert(id.to_string(), f);
        }
        None => {
            ratings.remove(id);
        }
    }
}

#[derive(Default)]
struct Counts {
    loaded: u64,
    refused: u64,
    skipped: u64,
    updates: u64,
    withheld: u64,
}

/// Loads one STIX object, counting what happened.
fn load(
    engine: &mut Engine<Arc<Event>>,
    v: &Value,
    norm: Normalize,
    counts: &mut Counts,
    ratings: &mut Ratings,
) {
    match Indicator::from_stix(v) {
        Ok(Ok(mut ind)) => {
            ind.info.pattern = norm.pattern(&ind.info.pattern);
            match engine.upsert(ind) {
                Ok(_) => {
                    counts.loaded += 1;
                    rate(ratings, v);
                }
                Err(e) => {
                    counts.refused += 1;
                    eprintln!("{}", json!({"refused": e.to_string()}));
                }
            }
        }
        Ok(Err(_)) => counts.skipped += 1,
        Err(e) => {
            counts.refused += 1;
            eprintln!("{}", json!({"refused": e.to_string()}));
        }
    }
}

/// Applies the store's indicator changes since the last poll.
fn poll(
    engine: &mut Engine<Arc<Event>>,
    store: &dyn Store,
    view: &HostView,
    seq: &mut i64,
    norm: Normalize,
    counts: &mut Counts,
    ratings: &mut Ratings,
) -> Result<()> {
    loop {
        let changes = store.indicator_changes(*seq, 10_000)?;
        let Some(&(last, _)) = changes.last() else {
            return Ok(());
        };
        let mut ids: Vec<&str> = changes.iter().map(|(_, id)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            counts.updates += 1;
            // Set again below if the new version is loaded and rated.
            ratings.remove(id);
            match store.latest_version(id)? {
                Some(raw) => match serde_json::from_str::<Value>(&raw) {
                    Ok(v) if !view.admits(&v) => {
                        counts.withheld += 1;
                        engine.remove(id);
                    }
                    Ok(v) => match Indicator::from_stix(&v) {
                        Ok(Ok(mut ind)) => {
                            ind.info.pattern = norm.pattern(&ind.info.pattern);
                            match engine.upsert(ind) {
                                Ok(_) => rate(ratings, &v),
                                Err(e) => {
                                    eprintln!("{}", json!({"refused": e.to_string()}));
                                    engine.remove(id);
                                }
                            }
                        }
                        // Revoked, or no longer a STIX pattern: unload.
                        _ => {
                            engine.remove(id);
                        }
                    },
                    Err(_) => {
                        engine.remove(id);
                    }
                },
                // Deleted everywhere.
                None => {
                    engine.remove(id);
                }
            }
        }
        engine.commit();
        *seq = last;
    }
}

fn alert(hit: &Hit<Arc<Event>>, rating: Option<&Value>) -> Value {
    let i = &hit.indicator;
    let observations: Vec<Value> = hit
        .observations
        .iter()
        .map(|ev| {
            let objects: serde_json::Map<String, Value> = ev
                .observation
                .objects
                .iter()
                .filter(|(_, o)| o.get("type").and_then(Value::as_str) != Some("observed-data"))
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect();
            json!({
                "input": &*ev.input,
                "file": &*ev.file,
                "line": ev.line,
                "first_observed": anyam_sensor::format_stix(ev.observation.first),
                "last_observed": anyam_sensor::format_stix(ev.observation.last),
                "objects": objects,
            })
        })
        .collect();
    let time = hit
        .observations
        .iter()
        .map(|e| e.observation.last)
        .max()
        .map(anyam_sensor::format_stix);
    let mut indicator = json!({
        "id": i.id,
        "name": i.name,
        "modified": i.modified,
        "created_by_ref": i.created_by_ref.as_deref(),
        "pattern": i.pattern,
    });
    if let (Some(ind), Some(Value::Object(r))) = (indicator.as_object_mut(), rating) {
        ind.extend(r.clone());
    }
    json!({
        "alert": "indicator-match",
        "time": time,
        "indicator": indicator,
        "observations": observations,
    })
}

pub fn run(a: DetectArgs) -> Result<ExitCode> {
    let specs: Vec<InputSpec> = a
        .inputs
        .iter()
        .map(|s| {
            let s = if s == "-" { "stix:-" } else { s.as_str() };
            s.parse::<InputSpec>().map_err(anyhow::Error::from)
        })
        .collect::<Result<_>>()?;
    if specs.iter().filter(|s| s.path.is_none()).count() > 1 {
        bail!("standard input can be read by one --input only");
    }
    let mut engine: Engine<Arc<Event>> = Engine::new(Options {
        max_window_secs: a.max_window_secs,
        validity: match a.validity {
            ValidityArg::Observation => Validity::ObservationTime,
            ValidityArg::WallClock => Validity::WallClock,
            ValidityArg::Ignore => Validity::Ignore,
        },
        ..Options::default()
    });
    let mut counts = Counts::default();
    let mut ratings = Ratings::new();
    let mut sightings = None;
    let load_started = Instant::now();
    let mut source = match &a.indicators {
        Some(path) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            crate::input::read_objects(file, &|_| {}, |line, item| {
                match serde_json::from_str::<Value>(&item) {
                    Ok(v) => load(&mut engine, &v, a.normalize, &mut counts, &mut ratings),
                    Err(e) => {
                        counts.refused += 1;
                        eprintln!(
                            "{}",
                            json!({"refused": format!("{}: item {line}: not JSON: {e}", path.display())})
                        );
                    }
                }
                Ok(())
            })
            .with_context(|| format!("reading {}", path.display()))?;
            Source::File
        }
        None => {
            let node = node::open_existing(&a.data.data_dir, a.data.config.as_deref())?;
            let view = HostView {
                rules: node
                    .gate()?
                    .rules(false)
                    .map_err(|e| anyhow::anyhow!("reading the release policy: {e}"))?,
            };
            let store = node.store.clone();
            if !a.no_sightings {
                if let Some(w) = &a.where_sighted
                    && !w.starts_with("identity--")
                {
                    bail!("--where-sighted must be an identity id (identity--…), got {w:?}");
                }
                let markings = if a.sightings_markings.is_empty() {
                    vec![sightings::TLP_AMBER_STRICT.to_string()]
                } else if a.sightings_markings.iter().any(|m| m == "none") {
                    Vec::new()
                } else {
                    a.sightings_markings.clone()
                };
                let node_identity = trust::host_identity(&node.dir, &node.config.node_name)?;
                // Sightings written are receipts of the node: a log that
                // cannot be opened stops detection before anything is written.
                let log = audit::open_for_append(&node.dir, &node.config).context(
                    "detect records the sightings it writes in the audit log, which cannot be opened \
                     (--no-sightings runs without writing to the node)",
                )?;
                let actor = format!(
                    "detect:{}",
                    node_identity
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or(&node.config.node_name)
                );
                let mut s = sightings::Sightings::open(
                    store.clone(),
                    &a.sightings_collection,
                    &node_identity,
                    a.where_sighted.clone(),
                    markings,
                    a.keep_observed_data,
                    sightings::SightingsAudit {
                        log,
                        actor,
                        operator: audit::operator(),
                    },
                )?;
                s.set_reporter(crate::federation::sighting_reporter(&node)?);
                sightings = Some(s);
            }
            let seq =
                store.latest_indicators(&mut |raw| match serde_json::from_str::<Value>(raw) {
                    Ok(v) if !view.admits(&v) => counts.withheld += 1,
                    Ok(v) => load(&mut engine, &v, a.normalize, &mut counts, &mut ratings),
                    Err(_) => counts.refused += 1,
                })?;
            Source::Store {
                store,
                seq,
                last_poll: Instant::now(),
                view,
            }
        }
    };
    engine.compact();
    let load_secs = load_started.elapsed().as_secs_f64();

    let shutdown = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if a.follow {
        let flag = shutdown.clone();
        // Ctrl-C ends followed inputs cleanly so the summary is written.
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let _ = tokio::signal::ctrl_c().await;
                });
                flag.store(true, Ordering::SeqCst);
            }
        });
    }
    let opts = anyam_sensor::Options {
        follow: a.follow,
        shutdown: shutdown.clone(),
        ..anyam_sensor::Options::default()
    };
    let inputs = specs
        .iter()
        .map(|s| anyam_sensor::open(s, &opts).with_context(|| format!("opening input {s}")))
        .collect::<Result<Vec<_>>>()?;
    let merged = anyam_sensor::merge(inputs);
    let handles = merged.stats();

    let mut out: Box<dyn Write> = match &a.alerts {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let bar = if a.quiet || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {pos} events {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b
    };

    let started = Instant::now();
    let dedup = i128::from(a.dedup_secs) * 1_000_000_000;
    let mut last_alert: HashMap<String, i128> = HashMap::new();
    let (mut events, mut malformed, mut hits_n, mut alerts_n, mut suppressed) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut hits = Vec::new();
    // Alerts written, by the Admiralty rating of their indicator.
    let mut by_rating: std::collections::BTreeMap<String, u64> = Default::default();
    for record in merged {
        if let Source::Store {
            store,
            seq,
            last_poll,
            view,
        } = &mut source
            && last_poll.elapsed() >= POLL
        {
            poll(
                &mut engine,
                store.as_ref(),
                view,
                seq,
                a.normalize,
                &mut counts,
                &mut ratings,
            )?;
            *last_poll = Instant::now();
            if let Some(s) = sightings.as_mut() {
                s.flush_or_warn();
            }
        }
        match record {
            Record::Event(mut ev) => {
                events += 1;
                a.normalize.observation(&mut ev.observation);
                if events % 4096 == 0 {
                    bar.set_position(events);
                    bar.set_message(format!("{hits_n} hits"));
                }
                let ev = Arc::new(ev);
                engine.observe(&ev.observation, &ev, &mut hits);
                for h in hits.drain(..) {
                    hits_n += 1;
                    if let Some(s) = sightings.as_mut() {
                        s.record(&h)?;
                    }
                    let t = h
                        .observations
                        .iter()
                        .map(|e| e.observation.last)
                        .max()
                        .unwrap_or(0);
                    if dedup > 0 {
                        if let Some(prev) = last_alert.get(&h.indicator.id)
                            && t - prev < dedup
                        {
                            suppressed += 1;
                            continue;
                        }
                        last_alert.insert(h.indicator.id.clone(), t);
                    }
                    alerts_n += 1;
                    let rating = ratings.get(&h.indicator.id);
                    let key = rating
                        .and_then(|r| r.get("admiralty"))
                        .and_then(Value::as_str)
                        .unwrap_or("unrated");
                    *by_rating.entry(key.to_string()).or_insert(0u64) += 1;
                    serde_json::to_writer(&mut out, &alert(&h, rating))?;
                    out.write_all(b"\n")?;
                    if a.follow {
                        out.flush()?;
                    }
                }
            }
            Record::Malformed(m) => {
                malformed += 1;
                eprintln!(
                    "{}",
                    json!({"malformed": m.reason, "input": &*m.input, "file": &*m.file, "line": m.line})
                );
            }
            Record::Skipped { .. } => {}
        }
    }
    out.flush()?;
    if let Some(s) = sightings.as_mut() {
        s.flush()?;
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let stats = engine.stats();
    let per_input: Vec<Value> = handles
        .iter()
        .map(|h| {
            let s = h.stats();
            json!({"input": &**h.label(), "lines": s.lines, "events": s.events,
                   "malformed": s.malformed, "skipped": s.skipped, "join_state_max": s.join_state_max})
        })
        .collect();
    let summary = json!({
        "summary": {
            "inputs": per_input,
            "events": events,
            "malformed": malformed,
            "hits": hits_n,
            "alerts": alerts_n,
            "suppressed_repeats": suppressed,
            "alerts_by_admiralty": by_rating,
            "sightings": sightings.as_ref().map(|s| json!({
                "collection": s.collection_id(),
                "versions_written": s.versions_written,
            })),
            "seconds": secs,
            "events_per_second": if secs > 0.0 { events as f64 / secs } else { 0.0 },
            "indicators": {
                "loaded": stats.indicators,
                "multi_observation": stats.multi_observation,
                "refused": counts.refused,
                "not_matchable": counts.skipped,
                "withheld_by_policy": counts.withheld,
                "live_updates": counts.updates,
                "load_seconds": load_secs,
            },
            "engine": {
                "candidates": stats.candidates,
                "evaluations": stats.evaluations,
                "eval_errors": stats.eval_errors,
                "buffered": stats.buffered,
                "evicted_window": stats.evicted_window,
                "evicted_cap": stats.evicted_cap,
            },
        }
    });
    eprintln!("{summary}");
    Ok(if malformed > 0 {
        ExitCode::from(EXIT_REJECTED)
    } else {
        ExitCode::SUCCESS
    })
}
