//! `anyam-bench post`: ingest throughput through TAXII "add objects".
//!
//! The objects are generated and serialized into envelopes of `batch`
//! objects before the clock starts, so the figure is the server's: parsing,
//! validation and a durable write. C connections each take the next
//! envelope until none is left. Every answer must be a status resource
//! (TAXII 2.1 §4.3.1) whose `success_count` equals the envelope's size; a
//! `pending` status is polled until it completes, and the wait counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use hyper::StatusCode;
use serde_json::{Value, json};

use crate::generate::Generator;
use crate::get::{new_hist, round};
use crate::http::{Conn, Target, TargetArgs, open_retrying};

#[derive(Args)]
pub struct PostArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Objects to post in all.
    #[arg(long, default_value_t = 100_000)]
    pub objects: usize,
    /// Objects per envelope.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Seed of the generated objects (use one the collection has not seen).
    #[arg(long, default_value_t = 2)]
    pub seed: u64,
    /// Client runtime threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Seconds to wait for one response.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// Label for the report (e.g. the server's name).
    #[arg(long, default_value = "")]
    pub label: String,
}

struct Tally {
    hist: Histogram<u64>,
    objects: u64,
    errors: u64,
    first_error: Option<String>,
}

pub fn run(a: PostArgs) -> Result<()> {
    if a.batch == 0 || a.connections == 0 {
        bail!("--batch and --connections must be positive");
    }
    let target = Target::from_args(&a.target)?;
    let envelopes = Arc::new(envelopes(a.objects, a.batch, a.seed));
    let bytes: usize = envelopes.iter().map(|(b, _)| b.len()).sum();
    eprintln!(
        "anyam-bench post: {} objects in {} envelopes, {:.1} MB",
        a.objects,
        envelopes.len(),
        bytes as f64 / 1e6
    );
    crate::runtime(a.threads)?.block_on(async move {
        // Connect (and wait for the server) before the clock starts.
        let mut conns = Vec::with_capacity(a.connections);
        for _ in 0..a.connections {
            conns.push(open_retrying(target.addr).await?);
        }
        let next = Arc::new(AtomicUsize::new(0));
        let timeout = Duration::from_secs_f64(a.timeout);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for conn in conns {
            let (target, envelopes, next) = (target.clone(), envelopes.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                worker(conn, target, envelopes, next, timeout).await
            }));
        }
        let mut hist = new_hist()?;
        let (mut objects, mut errors, mut first_error) = (0u64, 0u64, None);
        for t in tasks {
            let tally = t.await.context("post task")??;
            hist.add(&tally.hist)
                .map_err(|e| anyhow!("merging histograms: {e:?}"))?;
            objects += tally.objects;
            errors += tally.errors;
            first_error = first_error.or(tally.first_error);
        }
        let secs = start.elapsed().as_secs_f64();
        if let Some(e) = &first_error {
            eprintln!("anyam-bench post: first error: {e}");
        }
        let ms = |q: f64| round(hist.value_at_quantile(q) as f64 / 1000.0, 2);
        println!(
            "{}",
            json!({
                "bench": "post",
                "label": a.label,
                "auth": target.scheme,
                "connections": a.connections,
                "batch": a.batch,
                "objects": objects,
                "requests": hist.len(),
                "errors": errors,
                "seconds": round(secs, 3),
                "objects_per_s": round(objects as f64 / secs, 1),
                "request_p50_ms": ms(0.5),
                "request_p99_ms": ms(0.99),
                "request_max_ms": round(hist.max() as f64 / 1000.0, 2),
            })
        );
        if errors > 0 {
            bail!("{errors} envelopes were not fully accepted");
        }
        Ok(())
    })
}

/// The generated objects as serialized envelopes, with their sizes.
fn envelopes(count: usize, batch: usize, seed: u64) -> Vec<(Bytes, usize)> {
    let mut g = Generator::new(seed);
    let mut out = Vec::with_capacity(count.div_ceil(batch));
    let mut left = count;
    while left > 0 {
        let n = left.min(batch);
        left -= n;
        let mut body = Vec::with_capacity(n * 600);
        body.extend_from_slice(b"{\"objects\":[");
        for k in 0..n {
            if k > 0 {
                body.push(b',');
            }
            body.extend_from_slice(g.next_object().to_string().as_bytes());
        }
        body.extend_from_slice(b"]}");
        out.push((Bytes::from(body), n));
    }
    out
}

async fn worker(
    mut conn: Conn,
    target: Target,
    envelopes: Arc<Vec<(Bytes, usize)>>,
    next: Arc<AtomicUsize>,
    timeout: Duration,
) -> Result<Tally> {
    let mut tally = Tally {
        hist: new_hist()?,
        objects: 0,
        errors: 0,
        first_error: None,
    };
    loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        let Some((body, n)) = envelopes.get(k) else {
            break;
        };
        if conn.is_closed() {
            conn = open_retrying(target.addr).await?;
        }
        let t0 = Instant::now();
        match post_one(&mut conn, &target, body.clone(), timeout).await {
            Ok(ok) if ok == *n as u64 => {
                tally.objects += ok;
            }
            Ok(ok) => {
                tally.objects += ok;
                tally.errors += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| format!("envelope {k}: {ok} of {n} objects accepted"));
            }
            Err(e) => {
                tally.errors += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| format!("envelope {k}: {e:#}"));
            }
        }
        let us = u64::try_from(t0.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        tally.hist.saturating_record(us);
    }
    Ok(tally)
}

/// Posts one envelope; returns `success_count` once the status is complete.
async fn post_one(conn: &mut Conn, target: &Target, body: Bytes, timeout: Duration) -> Result<u64> {
    let reply = conn.send(target.post(body)?, timeout).await?;
    if reply.status != StatusCode::ACCEPTED && reply.status != StatusCode::OK {
        bail!(
            "status {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
        );
    }
    let mut status: Value =
        serde_json::from_slice(&reply.body).context("status resource is not JSON")?;
    let deadline = Instant::now() + timeout;
    while status.get("status").and_then(Value::as_str) == Some("pending") {
        if Instant::now() > deadline {
            bail!("status still pending after {timeout:?}");
        }
        let id = status
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("status without id"))?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = conn
            .send(
                target.get(&format!("{}status/{id}/", target.root_path))?,
                timeout,
            )
            .await?;
        status = serde_json::from_slice(&r.body).context("status resource is not JSON")?;
    }
    let failures = status
        .get("failure_count")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let successes = status
        .get("success_count")
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("status resource without success_count"))?;
    if failures > 0 {
        let first = status
            .pointer("/failures/0")
            .map(Value::to_string)
            .unwrap_or_default();
        bail!("{failures} objects failed, first: {first}");
    }
    Ok(successes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_hold_every_object_once() {
        let env = envelopes(2500, 1000, 3);
        assert_eq!(
            env.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            vec![1000, 1000, 500]
        );
        for (body, n) in &env {
            let v: Value = serde_json::from_slice(body).unwrap_or_default();
            assert_eq!(
                v.get("objects").and_then(Value::as_array).map(Vec::len),
                Some(*n)
            );
        }
    }
}
