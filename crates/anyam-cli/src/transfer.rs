//! Moving STIX in and out of a node: `import`, `export`, and the `pattern`
//! tools that read and write JSON lines.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyam_audit::{Event, Kind, ObjectRef};
use anyam_pattern::StixVersion;
use anyam_policy::{Gate, Principal};
use anyam_store::{BulkLoad, NewObject, PutOutcome, Query, StoreError, TokenScope};
use anyam_trust::admiralty::{self, Admiralty, AdmiraltyFilter, Credibility, Reliability};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::node::{self, Node};
use crate::{DataArgs, EXIT_REJECTED, audit};

/// Objects the reader validates and hands to the writer at a time.
const BATCH: usize = 5000;

/// Most objects stored in one write transaction. The writer stores
/// together every batch waiting for it, up to this many objects: each
/// commit writes out every index page its objects touched, and random ids
/// touch most pages of the id index once a collection is large, so a
/// transaction of 50,000 objects writes far fewer pages per object than
/// one of 5,000 (at 400,000 objects, about half the time per object).
const GROUP: usize = 50_000;

/// Batches the reader may have waiting for the writer. While the writer
/// commits a group, the reader fills this queue, so the next group is
/// ready; with the group being written and the batch being read, at most
/// about `2 * GROUP` objects are in memory.
const QUEUED_BATCHES: usize = GROUP / BATCH;

#[derive(Args)]
pub struct ImportArgs {
    /// File to read; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    /// Collection id or alias [default: the collection titled `default`].
    #[arg(long)]
    collection: Option<String>,
    #[arg(long, default_value = node::DEFAULT_API_ROOT)]
    api_root: String,
    /// Write the per-object report (JSON lines) here instead of standard error.
    #[arg(long)]
    report: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Page cache of the import's own database connection, in MiB. A
    /// large cache keeps the indexes that every insert touches in memory
    /// as the collection grows (the serving node's cache is the
    /// configuration's `store.cache_kib`, unchanged by this).
    #[arg(long, default_value_t = 256, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=65_536))]
    cache_mib: u32,
    #[command(flatten)]
    data: DataArgs,
}

/// The input of an import: the file named, or standard input for `-` or
/// nothing; with its size when it is a regular file (for the bar).
fn open_input(file: Option<&PathBuf>) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
    match file {
        Some(p) if p.as_os_str() != "-" => {
            let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let size = f
                .metadata()
                .ok()
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len());
            Ok((Box::new(f), size))
        }
        _ => Ok((Box::new(std::io::stdin()), None)),
    }
}

fn find_collection(
    n: &Node,
    api_root: &str,
    wanted: Option<&str>,
) -> Result<anyam_store::Collection> {
    let all = n.store.collections(api_root)?;
    let found = match wanted {
        Some(w) => all
            .into_iter()
            .find(|c| c.id == w || c.alias.as_deref() == Some(w)),
        None => all.into_iter().find(|c| c.title == "default"),
    };
    found.with_context(|| match wanted {
        Some(w) => format!("no collection `{w}` in API root `{api_root}`"),
        None => format!(
            "API root `{api_root}` has no collection titled `default`; name one with --collection"
        ),
    })
}

/// The `receipt` entry of one batch of an import: who ran it, into which
/// collection, from where, and the versions the batch stored.
fn import_receipt(
    actor: &str,
    coll: &anyam_store::Collection,
    source: &str,
    batch: usize,
    counts: serde_json::Value,
    stored: Vec<ObjectRef>,
) -> Vec<Event> {
    let mut e = Event::new(Kind::Receipt, actor);
    e.what.collection = Some(coll.id.clone());
    e.what.path = Some(source.to_string());
    e.why = "operator command `anyam import`".into();
    let mut details = serde_json::json!({
        "command": "import",
        "api_root": coll.api_root,
        "file": source,
        // Strings: audit details are canonicalized as doubles.
        "batch": batch.to_string(),
    });
    if let (Some(d), serde_json::Value::Object(more)) = (details.as_object_mut(), counts) {
        d.extend(more);
    }
    e.details = details;
    audit::split_by_objects(&e, stored)
}

/// One batch read and validated, ready for the writer.
struct Prepared {
    ready: Vec<NewObject>,
    /// The input item number of each of `ready`.
    ready_index: Vec<usize>,
    failed: Vec<(usize, anyam_taxii::ingest::Rejection)>,
    /// Items in the batch, valid or not.
    len: usize,
    /// Bytes of the input read by the end of the batch.
    read: u64,
}

/// Read the input and validate it batch by batch, sending each batch to
/// the writer. Stops quietly when the writer has stopped (its error is the
/// one reported); fails on input that cannot be read as objects.
fn read_batches(
    input: Box<dyn Read + Send>,
    tx: &std::sync::mpsc::SyncSender<Prepared>,
) -> Result<()> {
    let read = std::cell::Cell::new(0u64);
    let mut items: Vec<(usize, String)> = Vec::with_capacity(BATCH);
    let result = crate::input::read_objects(input, &|n| read.set(n), |index, text| {
        items.push((index, text));
        if items.len() == BATCH {
            send_batch(tx, &mut items, read.get())?;
        }
        Ok(())
    });
    // The objects read whole before the end, or before input that cannot
    // be read, are stored: the error then says where the input broke.
    let flushed = match &result {
        Err(e) if e.is::<WriterGone>() => Ok(()),
        _ if items.is_empty() => Ok(()),
        _ => send_batch(tx, &mut items, read.get()),
    };
    match result.and(flushed) {
        Err(e) if e.is::<WriterGone>() => Ok(()), // the writer's error is reported
        other => other,
    }
}

/// The writer stopped (on an error of its own, which is the one reported).
#[derive(Debug)]
struct WriterGone;

impl std::fmt::Display for WriterGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the writer stopped")
    }
}

impl std::error::Error for WriterGone {}

/// Validate a batch of items and hand it to the writer.
fn send_batch(
    tx: &std::sync::mpsc::SyncSender<Prepared>,
    items: &mut Vec<(usize, String)>,
    read: u64,
) -> Result<()> {
    let mut p = Prepared {
        ready: Vec::with_capacity(items.len()),
        ready_index: Vec::with_capacity(items.len()),
        failed: Vec::new(),
        len: items.len(),
        read,
    };
    for (index, raw) in items.drain(..) {
        match anyam_taxii::ingest::prepare(&raw) {
            Ok(o) => {
                p.ready.push(o);
                p.ready_index.push(index);
            }
            Err(r) => p.failed.push((index, r)),
        }
    }
    tx.send(p).map_err(|_| anyhow::Error::new(WriterGone))
}

/// The import's progress bar: bytes of a file read, or objects of a pipe
/// counted; nothing with `--quiet` (and nothing drawn unless standard
/// error is a terminal).
fn import_bar(quiet: bool, size: Option<u64>) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = match size {
        Some(total) => (
            indicatif::ProgressBar::new(total),
            "{bar:40} {bytes}/{total_bytes} {msg} {bytes_per_sec} eta {eta}",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "{spinner} {pos} objects {per_sec}",
        ),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

pub fn import(a: ImportArgs) -> Result<ExitCode> {
    let n = node::open_existing_tuned(&a.data.data_dir, a.data.config.as_deref(), |c| {
        c.store.cache_kib = i64::from(a.cache_mib) * 1024;
    })?;
    let coll = find_collection(&n, &a.api_root, a.collection.as_deref())?;
    // Every batch stored is recorded; open the log before anything is
    // stored, so that a log that cannot be written stops the import at
    // once rather than after the first batch.
    let log = audit::open_for_append(&n.dir, &n.config)
        .context("import records what it stores in the audit log, which cannot be opened")?;
    let actor = audit::operator();
    let (input, size) = open_input(a.file.as_ref())?;
    let source = a
        .file
        .as_ref()
        .map_or_else(|| "stdin".to_string(), |p| p.display().to_string());

    let mut report: Box<dyn Write> = match &a.report {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stderr()),
    };
    let bar = import_bar(a.quiet, size);
    let (mut added, mut unchanged, mut rejected) = (0u64, 0u64, 0u64);
    let mut reject =
        |report: &mut Box<dyn Write>, index: usize, id: &str, message: &str| -> Result<()> {
            rejected += 1;
            let line =
                serde_json::json!({ "source": source, "item": index, "id": id, "error": message });
            writeln!(report, "{line}")?;
            Ok(())
        };
    // The input is read and each batch validated on its own thread while
    // the writer stores the batches before it, so the two overlap, and a
    // bounded number of batches is in memory at any time. Each batch keeps
    // its own audit entry and number, however many share a transaction.
    let (mut batches, mut processed) = (0usize, 0u64);
    // What the load knows between its transactions, to spare lookups.
    let mut load = BulkLoad::new();
    let write_result: Result<()> = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Prepared>(QUEUED_BATCHES);
        let reader = scope.spawn(move || read_batches(input, &tx));
        while let Ok(first) = rx.recv() {
            // Everything already waiting joins this transaction.
            let mut group = vec![first];
            let mut objects: usize = group[0].ready.len();
            while objects < GROUP {
                match rx.try_recv() {
                    Ok(p) => {
                        objects += p.ready.len();
                        group.push(p);
                    }
                    Err(_) => break,
                }
            }
            let mut all: Vec<NewObject> = Vec::with_capacity(objects);
            let mut ends = Vec::with_capacity(group.len());
            for p in &mut group {
                all.append(&mut p.ready);
                ends.push(all.len());
            }
            // Objects committed but not made durable are stored all the
            // same: their receipts are recorded, then the import stops.
            let (outcomes, unsynced) = match n.store.put_objects_bulk(&coll.id, &all, &mut load) {
                Ok(outcomes) => (outcomes, None),
                Err(StoreError::NotDurable { reason, outcomes }) => (outcomes, Some(reason)),
                Err(e) => return Err(e.into()),
            };
            // The group's receipts go into the log in one append, so that
            // they are all recorded or none are.
            let first_batch = batches + 1;
            let mut events = Vec::new();
            let mut start = 0;
            for (p, end) in group.into_iter().zip(ends) {
                batches += 1;
                let (ready, outcomes) = (&all[start..end], &outcomes[start..end]);
                start = end;
                for (index, r) in p.failed {
                    reject(&mut report, index, &r.id, &r.message)?;
                }
                let stored = audit::stored_refs(ready, outcomes);
                let (batch_added, batch_unchanged) =
                    outcomes.iter().fold((0u64, 0u64), |(a, u), o| match o {
                        PutOutcome::Added(_) => (a + 1, u),
                        PutOutcome::Unchanged(_) => (a, u + 1),
                        PutOutcome::Conflict => (a, u),
                    });
                let mut counts = serde_json::json!({
                    "total": p.len.to_string(),
                    "added": batch_added.to_string(),
                    "unchanged": batch_unchanged.to_string(),
                    "rejected": (p.len as u64 - batch_added - batch_unchanged).to_string(),
                });
                if let Some(why) = &unsynced {
                    counts["not_acknowledged"] = serde_json::Value::String(why.clone());
                }
                events.extend(import_receipt(
                    &actor, &coll, &source, batches, counts, stored,
                ));
                for ((o, index), outcome) in ready.iter().zip(&p.ready_index).zip(outcomes) {
                    match outcome {
                        PutOutcome::Added(_) => added += 1,
                        PutOutcome::Unchanged(_) => unchanged += 1,
                        PutOutcome::Conflict => reject(
                            &mut report,
                            *index,
                            &o.id,
                            "version conflict: this id and version are already stored with different content",
                        )?,
                    }
                }
                if size.is_some() {
                    bar.set_position(p.read);
                } else {
                    bar.inc(p.len as u64);
                }
                processed += p.len as u64;
            }
            log.append_batch(&events).with_context(|| {
                format!(
                    "recording batches {first_batch} to {batches} of the import in the audit log \
                     (their objects were stored)"
                )
            })?;
            if let Some(why) = unsynced {
                bail!(
                    "batches {first_batch} to {batches} of the import were stored but not made \
                     durable, and the store takes no more objects: {why}"
                );
            }
            bar.set_message(format!("{processed} objects"));
        }
        // The channel closed: the reader finished, or stopped on bad input.
        match reader.join() {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("the input reader failed")),
        }
    });
    if let Err(e) = write_result {
        bar.abandon();
        report.flush()?;
        return Err(if processed > 0 {
            e.context(format!(
                "the import stopped after {batches} batch(es): {added} objects were added and \
                 {unchanged} were already present before it stopped; they stay stored (an \
                 import of the same input again reports them as already present)"
            ))
        } else {
            e
        });
    }
    bar.finish_and_clear();
    report.flush()?;
    println!(
        "imported into {} ({}): {added} added, {unchanged} already present, {rejected} rejected",
        coll.title, coll.id
    );
    Ok(if rejected > 0 {
        ExitCode::from(EXIT_REJECTED)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Args)]
pub struct ExportArgs {
    /// Collection id or alias [default: the collection titled `default`].
    #[arg(long)]
    collection: Option<String>,
    #[arg(long, default_value = node::DEFAULT_API_ROOT)]
    api_root: String,
    /// Export what this user may see (the release decision applies).
    #[arg(long = "as", default_value = node::ADMIN_USER, value_name = "USER")]
    as_user: String,
    /// Only these object types (repeatable or comma-separated).
    #[arg(long = "type", value_delimiter = ',')]
    types: Vec<String>,
    /// Only objects added after this RFC 3339 timestamp.
    #[arg(long)]
    added_after: Option<String>,
    /// Every version instead of the latest of each object.
    #[arg(long)]
    all_versions: bool,
    /// Output file [default: standard output].
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Only objects whose source reliability (Admiralty code) is this
    /// letter or better, A best; an object without one counts as F.
    #[arg(long, value_name = "A-F")]
    min_reliability: Option<Reliability>,
    /// Only objects whose information credibility (Admiralty code, from
    /// `confidence`) is this number or better, 1 best; an object without a
    /// `confidence` counts as 6.
    #[arg(long, value_name = "1-6")]
    min_credibility: Option<Credibility>,
    /// Describe each exported object on standard error, one JSON line each:
    /// id, type, version and its Admiralty rating.
    #[arg(long)]
    summary: bool,
    #[command(flatten)]
    data: DataArgs,
}

/// The Admiralty rating an object carries, as fields for a JSON line:
/// `admiralty` (`B2`) and `admiralty_description`, or `admiralty_error`
/// when its rating cannot be read. `None` when it carries no rating at all
/// (neither a `confidence` nor a source reliability), so that unrated
/// objects are not shown as rated F6.
pub(crate) fn admiralty_fields(object: &serde_json::Value) -> Option<serde_json::Value> {
    let has_reliability = object
        .get("extensions")
        .and_then(|e| e.get(admiralty::RELIABILITY_EXTENSION_ID))
        .is_some();
    if object.get("confidence").is_none() && !has_reliability {
        return None;
    }
    Some(match Admiralty::of(object) {
        Ok(a) => serde_json::json!({
            "admiralty": a.to_string(),
            "admiralty_description": a.describe(),
        }),
        Err(e) => serde_json::json!({ "admiralty_error": e.to_string() }),
    })
}

/// What an export wrote.
struct Written {
    /// The versions released, in the order written.
    released: Vec<ObjectRef>,
    /// Objects the caller may see that the Admiralty filter left out.
    filtered_out: u64,
}

pub fn export(a: ExportArgs) -> Result<ExitCode> {
    let n = node::open_existing(&a.data.data_dir, a.data.config.as_deref())?;
    let user = n
        .store
        .user(&a.as_user)?
        .with_context(|| format!("no user named `{}`", a.as_user))?;
    if user.disabled {
        bail!("user `{}` is disabled", a.as_user);
    }
    let principal = Principal {
        user: user.name,
        org: user.org,
        is_admin: user.is_admin,
        scope: TokenScope::Full,
    };
    let wanted = match &a.collection {
        Some(c) => c.clone(),
        None => find_collection(&n, &a.api_root, None)?.id,
    };
    let gate = n.gate()?;
    // Decide before anything is written: a user who may not read the
    // collection learns nothing, not even that it exists.
    let (coll, _) = gate
        .collection(&principal, &a.api_root, &wanted, anyam_policy::Action::Read)
        .map_err(|e| match e {
            anyam_policy::Denied::Store(e) => anyhow::Error::new(e),
            _ => anyhow::anyhow!(
                "collection `{wanted}` in API root `{}` does not exist or user `{}` may not read it",
                a.api_root,
                a.as_user
            ),
        })?;
    let mut q = Query {
        limit: 1000,
        types: a.types.clone(),
        ..Query::default()
    };
    if let Some(t) = &a.added_after {
        q.added_after = Some(
            anyam_taxii::params::parse_time(t)
                .with_context(|| format!("--added-after `{t}` is not an RFC 3339 timestamp"))?,
        );
    }
    if a.all_versions {
        q.versions = vec![anyam_store::VersionSel::All];
    }
    // A file output is written beside its destination and renamed into
    // place once complete, so a failed export never leaves half a bundle.
    let partial = a.output.as_ref().map(|p| {
        let mut name = p.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    });
    let filter = AdmiraltyFilter {
        min_reliability: a.min_reliability,
        min_credibility: a.min_credibility,
    };
    // Every release is recorded; open the log before anything is written,
    // so that a log that cannot be written stops the export at once.
    let log = audit::open_for_append(&n.dir, &n.config)
        .context("export records what it releases in the audit log, which cannot be opened")?;
    let destination = a
        .output
        .as_ref()
        .map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    let result = write_bundle(
        &gate,
        &principal,
        &a.api_root,
        &coll.id,
        q,
        partial.as_ref(),
        &Shown {
            filter,
            summary: a.summary,
        },
    )
    .and_then(|written| {
        // A file is recorded as released before it is put in place: a
        // release that cannot be audited does not happen.
        let events = export_release(&principal, &coll, &destination, &filter, &written);
        log.append_batch(&events).with_context(|| match &a.output {
            Some(_) => "recording the release in the audit log (nothing was released)".to_string(),
            None => {
                "recording the release in the audit log (the bundle was written to standard output)"
                    .to_string()
            }
        })?;
        Ok(written)
    });
    match (&result, &partial, &a.output) {
        (Ok(_), Some(tmp), Some(dest)) => std::fs::rename(tmp, dest)
            .with_context(|| format!("moving the export into {}", dest.display()))?,
        (Err(_), Some(tmp), _) => {
            let _ = std::fs::remove_file(tmp);
        }
        _ => {}
    }
    let written = result?;
    let count = written.released.len();
    if filter == AdmiraltyFilter::default() {
        eprintln!("exported {count} objects from {} ({})", coll.title, coll.id);
    } else {
        eprintln!(
            "exported {count} objects from {} ({}); {} left out by the Admiralty filter ({})",
            coll.title,
            coll.id,
            written.filtered_out,
            describe_filter(&filter)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `reliability B or better, credibility 3 or better`.
fn describe_filter(f: &AdmiraltyFilter) -> String {
    let mut parts = Vec::new();
    if let Some(r) = f.min_reliability {
        parts.push(format!("reliability {r} or better"));
    }
    if let Some(c) = f.min_credibility {
        parts.push(format!("credibility {c} or better"));
    }
    parts.join(", ")
}

/// The `release` entries of one export: the operator who ran it, the user
/// whose view was released and that user's organization (the party), the
/// collection, the destination, and the versions written.
fn export_release(
    principal: &Principal,
    coll: &anyam_store::Collection,
    destination: &str,
    filter: &AdmiraltyFilter,
    written: &Written,
) -> Vec<Event> {
    let mut e = Event::new(Kind::Release, audit::operator());
    e.parties.push(principal.org.clone());
    e.what.collection = Some(coll.id.clone());
    e.what.path = Some(destination.to_string());
    e.why = format!(
        "operator command `anyam export` as user {} (read grant of organization {})",
        principal.user, principal.org
    );
    let mut details = serde_json::json!({
        "command": "export",
        "api_root": coll.api_root,
        "as_user": principal.user,
        "file": destination,
        // Strings: audit details are canonicalized as doubles.
        "count": written.released.len().to_string(),
    });
    if *filter != AdmiraltyFilter::default() {
        details["admiralty_filter"] = serde_json::json!(filter);
        details["filtered_out"] = serde_json::json!(written.filtered_out.to_string());
    }
    e.details = details;
    audit::split_by_objects(&e, written.released.clone())
}

/// Which of the objects a principal may see an export writes, and what it
/// says about them.
struct Shown {
    filter: AdmiraltyFilter,
    /// Describe each object written on standard error.
    summary: bool,
}

/// Write every object the principal may see and `shown.filter` accepts as
/// one bundle; returns what was written.
fn write_bundle(
    gate: &Gate,
    principal: &Principal,
    api_root: &str,
    collection: &str,
    mut q: Query,
    file: Option<&PathBuf>,
    shown: &Shown,
) -> Result<Written> {
    let mut out: Box<dyn Write> = match file {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    write!(
        out,
        "{{\"type\":\"bundle\",\"id\":\"bundle--{}\",\"objects\":[",
        uuid::Uuid::new_v4()
    )?;
    let Shown { filter, summary } = shown;
    let filtering = *filter != AdmiraltyFilter::default();
    let mut written = Written {
        released: Vec::new(),
        filtered_out: 0,
    };
    let mut err = std::io::stderr().lock();
    loop {
        let page = gate
            .objects_via(
                principal,
                api_root,
                collection,
                &q,
                anyam_policy::Path::Export,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for o in &page.items {
            // Parsed only when something needs the object's properties.
            let value = if filtering || *summary {
                Some(
                    serde_json::from_str::<serde_json::Value>(&o.raw)
                        .with_context(|| format!("the stored object {} is not JSON", o.id))?,
                )
            } else {
                None
            };
            if let Some(v) = &value
                && !filter.accepts(v)
            {
                written.filtered_out += 1;
                continue;
            }
            if !written.released.is_empty() {
                out.write_all(b",")?;
            }
            out.write_all(b"\n")?;
            out.write_all(o.raw.as_bytes())?;
            written.released.push(ObjectRef {
                id: o.id.clone(),
                version: o.version.clone(),
            });
            if let (true, Some(v)) = (*summary, &value) {
                let mut line = serde_json::json!({
                    "id": o.id,
                    "type": o.object_type(),
                    "version": o.version,
                    "admiralty": null,
                });
                if let (Some(l), Some(serde_json::Value::Object(f))) =
                    (line.as_object_mut(), admiralty_fields(v))
                {
                    l.extend(f);
                }
                writeln!(err, "{line}")?;
            }
        }
        match page.next {
            Some(next) => q.next = Some(next),
            None => break,
        }
    }
    out.write_all(b"\n]}\n")?;
    out.flush()?;
    drop(out);
    if let Some(p) = file {
        File::open(p)?.sync_all()?;
    }
    Ok(written)
}

#[derive(Subcommand)]
pub enum PatternCmd {
    /// Validate patterns: JSON lines {"pattern": …, "stix_version": "2.1"} in,
    /// one JSON line {"valid": …} out per input line.
    Validate {
        /// Input file [default: standard input].
        file: Option<PathBuf>,
    },
    /// Match patterns against observations: JSON lines {"pattern": …,
    /// "observations": […]} in, one line `match`, `nomatch` or
    /// `error: …` out per input line.
    Match {
        /// Input file [default: standard input].
        file: Option<PathBuf>,
    },
    /// Check one pattern and show it parsed, or the error under its column.
    Check {
        pattern: String,
        /// Read the pattern as STIX 2.0.
        #[arg(long)]
        stix_2_0: bool,
    },
}

fn input(file: Option<PathBuf>) -> Result<Box<dyn BufRead>> {
    Ok(match file {
        Some(p) if p.as_os_str() != "-" => Box::new(BufReader::new(
            File::open(&p).with_context(|| format!("opening {}", p.display()))?,
        )),
        _ => Box::new(BufReader::new(std::io::stdin())),
    })
}

pub fn pattern(cmd: PatternCmd) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    match cmd {
        PatternCmd::Validate { file } => {
            anyam_pattern::lines::validate_lines(input(file)?, BufWriter::new(stdout.lock()))?;
        }
        PatternCmd::Match { file } => {
            anyam_pattern::lines::match_lines(input(file)?, BufWriter::new(stdout.lock()))?;
        }
        PatternCmd::Check { pattern, stix_2_0 } => {
            let version = if stix_2_0 {
                StixVersion::V2_0
            } else {
                StixVersion::V2_1
            };
            let (text, ok) = anyam_pattern::lines::check(&pattern, version);
            println!("{text}");
            if !ok {
                return Ok(ExitCode::from(EXIT_REJECTED));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::{Value, json};

    fn rated(confidence: Option<u64>, reliability: Option<&str>) -> Value {
        let mut o = json!({"type": "indicator", "id": "indicator--1"});
        if let Some(c) = confidence {
            o["confidence"] = json!(c);
        }
        if let Some(r) = reliability {
            o["extensions"] = json!({ admiralty::RELIABILITY_EXTENSION_ID: {
                "extension_type": "property-extension",
                admiralty::RELIABILITY_PROPERTY: r,
            }});
        }
        o
    }

    #[test]
    fn admiralty_fields_name_the_rating_only_of_rated_objects() {
        let cases: [(Option<u64>, Option<&str>, Option<Value>); 5] = [
            (None, None, None),
            (
                Some(70),
                Some("B"),
                Some(json!({
                    "admiralty": "B2",
                    "admiralty_description": "B2 (usually reliable, probably true)",
                })),
            ),
            (
                Some(95),
                None,
                Some(json!({
                    "admiralty": "F1",
                    "admiralty_description": "F1 (reliability cannot be judged, confirmed by other sources)",
                })),
            ),
            (
                None,
                Some("a"),
                Some(json!({
                    "admiralty": "A6",
                    "admiralty_description": "A6 (completely reliable, truth cannot be judged)",
                })),
            ),
            (Some(50), Some("Z"), None),
        ];
        for (confidence, reliability, expected) in cases {
            let got = admiralty_fields(&rated(confidence, reliability));
            match expected {
                Some(e) => assert_eq!(got, Some(e), "{confidence:?} {reliability:?}"),
                // A malformed reliability is reported, not hidden.
                None if reliability.is_some() => {
                    assert!(got.unwrap().get("admiralty_error").is_some());
                }
                None => assert_eq!(got, None),
            }
        }
    }

    #[test]
    fn the_export_filter_follows_the_admiralty_semantics() {
        // (min reliability, min credibility, objects accepted out of
        // unrated, B2, C3, A5, F1)
        let objects = [
            rated(None, None),
            rated(Some(70), Some("B")),
            rated(Some(50), Some("C")),
            rated(Some(10), Some("A")),
            rated(Some(90), None),
        ];
        let cases = [
            (None, None, vec![0, 1, 2, 3, 4]),
            (Some("B"), None, vec![1, 3]),
            (None, Some("3"), vec![1, 2, 4]),
            (Some("C"), Some("3"), vec![1, 2]),
            (Some("F"), Some("6"), vec![0, 1, 2, 3, 4]),
        ];
        for (r, c, want) in cases {
            let f = AdmiraltyFilter::from_params(r, c).unwrap();
            let got: Vec<usize> = objects
                .iter()
                .enumerate()
                .filter(|(_, o)| f.accepts(o))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(got, want, "{r:?} {c:?}");
        }
        let f = AdmiraltyFilter::from_params(Some("B"), Some("3")).unwrap();
        assert_eq!(
            describe_filter(&f),
            "reliability B or better, credibility 3 or better"
        );
    }

    #[test]
    fn the_filter_flags_parse_like_the_api_parameters() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            export: ExportArgs,
        }
        let a = Cli::try_parse_from(["x", "--min-reliability", "b", "--min-credibility", "2"])
            .unwrap()
            .export;
        assert_eq!(a.min_reliability, Some(Reliability::B));
        assert_eq!(a.min_credibility, Credibility::new(2));
        for bad in [
            ["x", "--min-reliability", "G"],
            ["x", "--min-credibility", "7"],
            ["x", "--min-credibility", "B"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
