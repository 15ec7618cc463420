//! `anyam-bench`: the benchmark harness of an Anyam node.
//!
//! The node's performance goals are stated as throughput and tail latency
//! of what real clients do: page through a collection with TAXII "get
//! objects", push envelopes with "add objects", and run `anyam import`. This
//! binary produces the workload and measures it from the outside, over a
//! real socket, with the same credentials a client would send. The script
//! `bench/taxii.sh` drives it against a node and against the OASIS reference
//! server on the same machine in one run, so results are read as ratios.
//!
//! # Subcommands
//!
//! - `gen` writes realistic STIX 2.1 objects as JSON lines, deterministically
//!   from a seed (see `generate`).
//! - `get` is a closed-loop load generator: C keep-alive connections, each
//!   asking for one page at a random depth as soon as the last page arrived;
//!   it prints one JSON line with requests/s and p50/p90/p99/max latency from
//!   an HDR histogram, the auth scheme used, and, given `--server-pid`, the
//!   server's peak RSS and CPU use during the run.
//! - `post` measures ingest: objects/s through envelopes of 1,000 objects,
//!   checking every status resource counts each object as a success.
//! - `rss` reads a process's resident memory once or over a while.
//!
//! # Design choices
//!
//! The load generator shares two cores with the server it measures, so it
//! is built to be cheap: one single-threaded runtime, one raw HTTP/1.1
//! connection per task (no pool, no redirects, no TLS), request headers
//! prepared once. A closed loop with C connections means the figure is the
//! throughput at concurrency C, not a chosen arrival rate; p99 is therefore
//! "latency under saturation", the pessimistic number. Requests only go to
//! loopback addresses: the harness refuses any other target.
//!
//! # What it is not
//!
//! Not a test: it asserts nothing about speed and never fails on a slow
//! figure, only on wrong answers (non-200 pages, rejected objects).

mod generate;
mod get;
mod http;
mod post;
mod procfs;

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "anyam-bench",
    version,
    about = "Benchmark harness for an Anyam node (TAXII 2.1 load, ingest, memory)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write generated STIX 2.1 objects as JSON lines.
    Gen(GenArgs),
    /// Closed-loop load of "get objects" pages; prints a JSON summary.
    Get(get::GetArgs),
    /// Ingest throughput through "add objects"; prints a JSON summary.
    Post(post::PostArgs),
    /// Resident memory of a process, in MB.
    Rss(RssArgs),
}

#[derive(Args)]
struct GenArgs {
    /// How many objects.
    #[arg(long)]
    count: usize,
    /// Seed; the same seed gives the same objects.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file [default: standard output].
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RssArgs {
    /// Process id.
    #[arg(long)]
    pid: u32,
    /// Sample for this many seconds and report the largest RSS seen.
    #[arg(long, default_value_t = 0.0)]
    watch: f64,
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Gen(a) => generate_to(a),
        Command::Get(a) => get::run(a),
        Command::Post(a) => post::run(a),
        Command::Rss(a) => rss(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("anyam-bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn generate_to(a: GenArgs) -> Result<()> {
    let sink: Box<dyn Write> = match &a.out {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let mut g = generate::Generator::new(a.seed);
    for _ in 0..a.count {
        serde_json::to_writer(&mut out, &g.next_object())?;
        out.write_all(b"\n")?;
    }
    out.flush().context("writing objects")?;
    Ok(())
}

fn rss(a: RssArgs) -> Result<()> {
    let pid = a.pid.to_string();
    let mut m = procfs::memory(&pid)?;
    if a.watch > 0.0 {
        let end = std::time::Instant::now() + Duration::from_secs_f64(a.watch);
        while std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(200));
            if let Ok(now) = procfs::memory(&pid) {
                m = m.max(now);
            }
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "pid": a.pid,
            "rss_mb": get::round(procfs::mib(m.rss_kib), 1),
            "hwm_mb": get::round(procfs::mib(m.hwm_kib), 1),
            "rss_anon_mb": get::round(procfs::mib(m.anon_kib), 1),
            "rss_file_mb": get::round(procfs::mib(m.file_kib), 1),
        })
    );
    Ok(())
}

/// The client runtime: a single thread unless asked for more, so the load
/// generator takes as little as possible from the server it measures.
fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    rt.context("starting the client runtime")
}
