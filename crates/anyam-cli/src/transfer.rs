//! Moving STIX in and out of a node: `import`, `export`, and the `pattern`
//! tools that read and write JSON lines.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyam_pattern::StixVersion;
use anyam_policy::{Gate, Principal};
use anyam_store::{NewObject, PutOutcome, Query, TokenScope};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::node::{self, Node};
use crate::{DataArgs, EXIT_REJECTED};

/// Objects per write transaction during import: large enough that the
/// commit's wait for the disk is paid rarely, small enough to bound memory.
const BATCH: usize = 5000;

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
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Deserialize)]
struct Container<'a> {
    #[serde(borrow)]
    objects: Option<Vec<&'a RawValue>>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Split the input into object texts: a bundle or TAXII envelope (one JSON
/// object with an `objects` list), a JSON array of objects, one bare
/// object, or JSON lines (one object per line).
pub(crate) fn split_objects(text: &str) -> Result<Vec<(usize, &str)>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let list: Vec<&RawValue> =
            serde_json::from_str(text).context("the input is not a JSON array of objects")?;
        return Ok(list
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i + 1, r.get()))
            .collect());
    }
    // One JSON document?
    let mut de = serde_json::Deserializer::from_str(text);
    if let Ok(raw) = <&RawValue>::deserialize(&mut de)
        && de.end().is_ok()
    {
        let c: Container<'_> =
            serde_json::from_str(raw.get()).context("the input is not a JSON object")?;
        return match (c.objects, c.kind.as_deref()) {
            (Some(objs), _) => Ok(objs
                .into_iter()
                .enumerate()
                .map(|(i, r)| (i + 1, r.get()))
                .collect()),
            (None, Some("bundle")) => Ok(Vec::new()),
            (None, _) => Ok(vec![(1, raw.get())]),
        };
    }
    // JSON lines: each non-empty line is one object; a bad line is reported
    // with its line number by the ingest step.
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect())
}

fn read_input(file: Option<&PathBuf>) -> Result<String> {
    let mut text = String::new();
    match file {
        Some(p) if p.as_os_str() != "-" => {
            File::open(p)
                .with_context(|| format!("opening {}", p.display()))?
                .read_to_string(&mut text)
                .with_context(|| format!("reading {} (is it UTF-8 JSON?)", p.display()))?;
        }
        _ => {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
        }
    }
    Ok(text)
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

pub fn import(a: ImportArgs) -> Result<ExitCode> {
    let n = node::open_existing(&a.data.data_dir, a.data.config.as_deref())?;
    let coll = find_collection(&n, &a.api_root, a.collection.as_deref())?;
    let text = read_input(a.file.as_ref())?;
    let items = split_objects(&text)?;
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
    let bar = if a.quiet || items.len() < 10_000 {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(items.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} objects {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    let (mut added, mut unchanged, mut rejected) = (0u64, 0u64, 0u64);
    let mut reject =
        |report: &mut Box<dyn Write>, index: usize, id: &str, message: &str| -> Result<()> {
            rejected += 1;
            let line =
                serde_json::json!({ "source": source, "item": index, "id": id, "error": message });
            writeln!(report, "{line}")?;
            Ok(())
        };
    // Validation of the next batch runs on its own thread while the current
    // batch is written, so CPU work and the commit's disk wait overlap.
    type Prepared = (
        Vec<NewObject>,
        Vec<usize>,
        Vec<(usize, anyam_taxii::ingest::Rejection)>,
        usize,
    );
    let write_result: Result<()> = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Prepared>(2);
        let items = &items;
        scope.spawn(move || {
            for chunk in items.chunks(BATCH) {
                let mut ready = Vec::with_capacity(chunk.len());
                let mut ready_index = Vec::with_capacity(chunk.len());
                let mut failed = Vec::new();
                for (index, raw) in chunk {
                    match anyam_taxii::ingest::prepare(raw) {
                        Ok(o) => {
                            ready.push(o);
                            ready_index.push(*index);
                        }
                        Err(r) => failed.push((*index, r)),
                    }
                }
                if tx.send((ready, ready_index, failed, chunk.len())).is_err() {
                    return; // the writer stopped on an error
                }
            }
        });
        for (ready, ready_index, failed, len) in rx {
            for (index, r) in failed {
                reject(&mut report, index, &r.id, &r.message)?;
            }
            let outcomes = n.store.put_objects(&coll.id, &ready)?;
            for ((o, index), outcome) in ready.iter().zip(&ready_index).zip(outcomes) {
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
            bar.inc(len as u64);
        }
        Ok(())
    });
    write_result?;
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
    #[command(flatten)]
    data: DataArgs,
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
    let result = write_bundle(
        &gate,
        &principal,
        &a.api_root,
        &coll.id,
        q,
        partial.as_ref(),
    );
    match (&result, &partial, &a.output) {
        (Ok(_), Some(tmp), Some(dest)) => std::fs::rename(tmp, dest)
            .with_context(|| format!("moving the export into {}", dest.display()))?,
        (Err(_), Some(tmp), _) => {
            let _ = std::fs::remove_file(tmp);
        }
        _ => {}
    }
    let count = result?;
    eprintln!("exported {count} objects from {} ({})", coll.title, coll.id);
    Ok(ExitCode::SUCCESS)
}

/// Write every object the principal may see as one bundle; returns how many.
fn write_bundle(
    gate: &Gate,
    principal: &Principal,
    api_root: &str,
    collection: &str,
    mut q: Query,
    file: Option<&PathBuf>,
) -> Result<u64> {
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
    let mut count = 0u64;
    loop {
        let page = gate
            .objects(principal, api_root, collection, &q)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for o in &page.items {
            if count > 0 {
                out.write_all(b",")?;
            }
            out.write_all(b"\n")?;
            out.write_all(o.raw.as_bytes())?;
            count += 1;
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
    Ok(count)
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
