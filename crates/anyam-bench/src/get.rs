//! `anyam-bench get`: closed-loop load of TAXII "get objects" pages.
//!
//! C tasks each own one keep-alive connection and send the next request as
//! soon as the previous response has been read in full. Each request asks
//! for one page (`limit`) starting at a random depth: `added_after` is drawn
//! uniformly from the collection's `date_added` range, which is learnt once
//! from the manifest's `X-TAXII-Date-Added-First`/`-Last` headers (TAXII 2.1
//! §3.3.1) by bisection, so the load touches the whole collection instead of
//! a hot first page. Latency is from writing the request to reading the last
//! body byte, recorded in an HDR histogram; requests that start during the
//! warm-up are not recorded.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use hdrhistogram::Histogram;
use hyper::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::http::{Conn, Target, TargetArgs, open_retrying};
use crate::procfs;

#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of unrecorded load before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Objects per page.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Client runtime threads (1 leaves the most CPU to the server).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Sample this process's RSS (and CPU time) during the run.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The `date_added` range to draw from, as `FIRST,LAST` (RFC 3339),
    /// instead of discovering it.
    #[arg(long, value_name = "FIRST,LAST")]
    pub added_range: Option<String>,
    /// Seconds to wait for one response.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Label for the report (e.g. the server's name).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Seed of the depth choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// HTTP client: one raw hyper connection per task, or a shared reqwest
    /// client with a keep-alive pool of `connections` (to compare their cost).
    #[arg(long, value_enum, default_value = "hyper")]
    pub client: ClientKind,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ClientKind {
    Hyper,
    Reqwest,
}

/// The client a load task sends with.
enum Client {
    Hyper(Option<Conn>),
    Reqwest(reqwest::Client),
}

impl Client {
    /// Sends a GET of `pq` and returns status and body length.
    async fn get(
        &mut self,
        target: &Target,
        pq: &str,
        timeout: Duration,
    ) -> Result<(StatusCode, bytes::Bytes)> {
        match self {
            Client::Hyper(slot) => {
                let mut c = match slot.take() {
                    Some(c) if !c.is_closed() => c,
                    _ => Conn::open(target.addr).await?,
                };
                let reply = c.send(target.get(pq)?, timeout).await?;
                *slot = Some(c);
                Ok((reply.status, reply.body))
            }
            Client::Reqwest(client) => {
                let resp = client
                    .get(format!("http://{}{pq}", target.authority))
                    .header(hyper::header::ACCEPT, crate::http::TAXII)
                    .header(hyper::header::AUTHORIZATION, target.auth().clone())
                    .timeout(timeout)
                    .send()
                    .await?;
                let status = resp.status();
                Ok((status, resp.bytes().await?))
            }
        }
    }
}

/// What one load task counted.
struct Tally {
    hist: Histogram<u64>,
    requests: u64,
    errors: u64,
    bytes: u64,
    first_error: Option<String>,
    finished: Instant,
}

pub fn run(a: GetArgs) -> Result<()> {
    if a.connections == 0 || a.duration <= 0.0 || a.warmup < 0.0 || a.timeout <= 0.0 {
        bail!("--connections and --duration must be positive, --warmup not negative");
    }
    let target = Target::from_args(&a.target)?;
    crate::runtime(a.threads)?.block_on(load(a, target))
}

async fn load(a: GetArgs, target: Target) -> Result<()> {
    let timeout = Duration::from_secs_f64(a.timeout);
    let (first, last) = match &a.added_range {
        Some(r) => {
            let (f, l) = r
                .split_once(',')
                .ok_or_else(|| anyhow!("--added-range wants FIRST,LAST"))?;
            (micros(f)?, micros(l)?)
        }
        None => {
            let mut conn = open_retrying(target.addr).await?;
            date_range(&mut conn, &target, timeout).await?
        }
    };
    eprintln!(
        "anyam-bench get: date_added range {} .. {}",
        fmt_micros(first),
        fmt_micros(last)
    );

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(a.warmup);
    let end = measure_from + Duration::from_secs_f64(a.duration);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let sampler = a.server_pid.map(|pid| {
        tokio::spawn(procfs::sample_until(
            pid.to_string(),
            Duration::from_millis(200),
            stop_rx,
        ))
    });

    let shared = match a.client {
        ClientKind::Hyper => None,
        ClientKind::Reqwest => Some(
            reqwest::Client::builder()
                .no_proxy()
                .http1_only()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(a.connections)
                .build()
                .context("building the reqwest client")?,
        ),
    };
    let mut tasks = Vec::with_capacity(a.connections);
    for k in 0..a.connections {
        let target = target.clone();
        let client = match &shared {
            Some(c) => Client::Reqwest(c.clone()),
            None => Client::Hyper(None),
        };
        let seed = a.seed.wrapping_mul(1_000_003).wrapping_add(k as u64);
        let limit = a.limit;
        tasks.push(tokio::spawn(async move {
            worker(
                client,
                target,
                seed,
                limit,
                (first, last),
                measure_from,
                end,
                timeout,
            )
            .await
        }));
    }

    // CPU time of both sides over the measured window.
    tokio::time::sleep_until(measure_from.into()).await;
    let pid = a.server_pid.map(|p| p.to_string());
    let cpu0 = (
        pid.as_deref().and_then(procfs::cpu_time),
        procfs::cpu_time("self"),
    );
    tokio::time::sleep_until(end.into()).await;
    let cpu1 = (
        pid.as_deref().and_then(procfs::cpu_time),
        procfs::cpu_time("self"),
    );

    let mut hist = new_hist()?;
    let (mut requests, mut errors, mut bytes) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    let mut finished = end;
    for t in tasks {
        let tally = t.await.context("load task")??;
        hist.add(&tally.hist)
            .map_err(|e| anyhow!("merging histograms: {e:?}"))?;
        requests += tally.requests;
        errors += tally.errors;
        bytes += tally.bytes;
        first_error = first_error.or(tally.first_error);
        finished = finished.max(tally.finished);
    }
    let _ = stop_tx.send(());
    let memory = match sampler {
        Some(s) => Some(s.await.context("RSS sampler")?),
        None => None,
    };
    if let Some(e) = &first_error {
        eprintln!("anyam-bench get: first error: {e}");
    }

    let window = finished.duration_since(measure_from).as_secs_f64();
    let measured = hist.len();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let cores = |pair: (Option<Duration>, Option<Duration>)| match pair {
        (Some(x), Some(y)) => Some(y.saturating_sub(x).as_secs_f64() / a.duration),
        _ => None,
    };
    let report = json!({
        "bench": "get",
        "label": a.label,
        "auth": target.scheme,
        "client": match a.client { ClientKind::Hyper => "hyper", ClientKind::Reqwest => "reqwest" },
        "connections": a.connections,
        "limit": a.limit,
        "duration_s": round(window, 2),
        "requests": measured,
        "errors": errors,
        "req_per_s": round(measured as f64 / window, 1),
        "p50_ms": round(ms(0.5), 3),
        "p90_ms": round(ms(0.9), 3),
        "p99_ms": round(ms(0.99), 3),
        "max_ms": round(hist.max() as f64 / 1000.0, 3),
        "mean_response_bytes": bytes.checked_div(requests).unwrap_or(0),
        "server_max_rss_mb": memory.map(|m| round(procfs::mib(m.rss_kib), 1)),
        "server_hwm_mb": memory.map(|m| round(procfs::mib(m.hwm_kib), 1)),
        "server_max_rss_anon_mb": memory.map(|m| round(procfs::mib(m.anon_kib), 1)),
        "server_max_rss_file_mb": memory.map(|m| round(procfs::mib(m.file_kib), 1)),
        "server_cpu_cores": cores((cpu0.0, cpu1.0)).map(|c| round(c, 2)),
        "client_cpu_cores": cores((cpu0.1, cpu1.1)).map(|c| round(c, 2)),
    });
    println!("{report}");
    if errors > 0 && errors * 100 > requests {
        bail!("{errors} of {requests} requests failed");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    mut client: Client,
    target: Target,
    seed: u64,
    limit: u32,
    (first, last): (i64, i64),
    measure_from: Instant,
    end: Instant,
    timeout: Duration,
) -> Result<Tally> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally {
        hist: new_hist()?,
        requests: 0,
        errors: 0,
        bytes: 0,
        first_error: None,
        finished: Instant::now(),
    };
    let path = target.objects_path();
    loop {
        if Instant::now() >= end {
            break;
        }
        // One microsecond before `first` so the first object can be drawn.
        let after = rng.gen_range(first - 1..last.max(first));
        let pq = format!("{path}?limit={limit}&added_after={}", fmt_micros(after));
        let t0 = Instant::now();
        let result = client.get(&target, &pq, timeout).await;
        let elapsed = t0.elapsed();
        tally.requests += 1;
        match result {
            Ok((status, body)) if status == StatusCode::OK && !body.is_empty() => {
                tally.bytes += body.len() as u64;
                if t0 >= measure_from {
                    let us = u64::try_from(elapsed.as_micros())
                        .unwrap_or(u64::MAX)
                        .max(1);
                    tally.hist.saturating_record(us);
                }
            }
            Ok((status, body)) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| {
                    format!(
                        "status {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    )
                });
            }
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| format!("{e:#}"));
                // Do not spin if the server is gone; the loop is bounded by `end`.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    tally.finished = Instant::now();
    Ok(tally)
}

/// Learns the collection's first and last `date_added` (microseconds since
/// the epoch): the first from a one-entry manifest page, the last by
/// bisecting `added_after` over time, each step jumping to the first date
/// found after the midpoint.
async fn date_range(conn: &mut Conn, target: &Target, timeout: Duration) -> Result<(i64, i64)> {
    let first = first_after(conn, target, None, timeout)
        .await?
        .ok_or_else(|| {
            anyhow!("the collection is empty (or not readable with these credentials)")
        })?;
    let mut lo = first;
    let mut hi = jiff::Timestamp::now().as_microsecond() + 86_400_000_000;
    for _ in 0..128 {
        if hi - lo <= 1 {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        match first_after(conn, target, Some(mid), timeout).await? {
            Some(d) if d > lo => lo = d,
            Some(_) => hi = mid,
            None => hi = mid,
        }
    }
    Ok((first, lo))
}

/// `date_added` of the first manifest entry after `after`, if any.
async fn first_after(
    conn: &mut Conn,
    target: &Target,
    after: Option<i64>,
    timeout: Duration,
) -> Result<Option<i64>> {
    let mut pq = format!("{}?limit=1", target.manifest_path());
    if let Some(t) = after {
        pq.push_str(&format!("&added_after={}", fmt_micros(t)));
    }
    let reply = conn.send(target.get(&pq)?, timeout).await?;
    if reply.status != StatusCode::OK {
        bail!(
            "GET {pq}: status {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
        );
    }
    let body: serde_json::Value =
        serde_json::from_slice(&reply.body).context("manifest is not JSON")?;
    let empty = body
        .get("objects")
        .and_then(|o| o.as_array())
        .is_none_or(|o| o.is_empty());
    if empty {
        return Ok(None);
    }
    let header = reply
        .headers
        .get("x-taxii-date-added-first")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("manifest page without X-TAXII-Date-Added-First"))?;
    micros(header).map(Some)
}

fn micros(text: &str) -> Result<i64> {
    let ts: jiff::Timestamp = text
        .trim()
        .parse()
        .with_context(|| format!("`{text}` is not an RFC 3339 timestamp"))?;
    Ok(ts.as_microsecond())
}

/// RFC 3339 UTC with six fractional digits.
pub fn fmt_micros(us: i64) -> String {
    match jiff::Timestamp::from_microsecond(us) {
        Ok(ts) => format!("{ts:.6}"),
        Err(_) => String::from("1970-01-01T00:00:00.000000Z"),
    }
}

pub fn new_hist() -> Result<Histogram<u64>> {
    // One microsecond to ten minutes, three significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| anyhow!("histogram: {e:?}"))
}

pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_in_microseconds() {
        let us = micros("2026-11-26T17:20:25.123456Z").unwrap_or_default();
        assert_eq!(fmt_micros(us), "2026-11-26T17:20:25.123456Z");
        assert_eq!(micros("2026-11-26T17:20:25Z").ok(), Some(us - 123_456));
        assert!(micros("yesterday").is_err());
    }
}
