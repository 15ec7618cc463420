//! Reading a process's memory and CPU time from Linux's `/proc`.
//!
//! Resident set size comes from `/proc/PID/status` (`VmRSS`, and `VmHWM`,
//! its high-water mark since the process started); CPU time from the
//! `utime` and `stime` fields of `/proc/PID/stat`, in clock ticks.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};

/// Memory of a process, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// The anonymous part of RSS (heap, stacks): what the process itself
    /// allocated, as opposed to file pages such as a memory-mapped database
    /// that the kernel can drop and re-read.
    pub anon_kib: u64,
    /// The file-backed part of RSS.
    pub file_kib: u64,
}

impl Memory {
    /// Field-wise maximum.
    pub fn max(self, o: Memory) -> Memory {
        Memory {
            rss_kib: self.rss_kib.max(o.rss_kib),
            hwm_kib: self.hwm_kib.max(o.hwm_kib),
            anon_kib: self.anon_kib.max(o.anon_kib),
            file_kib: self.file_kib.max(o.file_kib),
        }
    }
}

pub fn memory(pid: &str) -> Result<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading status of {pid}"))?;
    parse_status(&text).ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:").unwrap_or(0),
        anon_kib: field("RssAnon:").unwrap_or(0),
        file_kib: field("RssFile:").unwrap_or(0),
    })
}

/// User plus system CPU time of `pid` (`self` for this process).
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; fields are
    // counted after its closing parenthesis (proc(5)).
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Linux reports these in USER_HZ, which is 100 on every architecture
    // the node targets.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Samples memory of `pid` every `every` until told to stop; returns the
/// largest RSS seen and the last high-water mark read.
pub async fn sample_until(
    pid: String,
    every: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Memory {
    let mut max = Memory::default();
    loop {
        if let Ok(m) = memory(&pid) {
            max = max.max(m);
        }
        tokio::select! {
            _ = &mut stop => return max,
            () = tokio::time::sleep(every) => {}
        }
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let text = "Name:\tanyam\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\nRssAnon:\t 60000 kB\nRssFile:\t 40000 kB\n";
        let m = Memory {
            rss_kib: 100_000,
            hwm_kib: 123_456,
            anon_kib: 60_000,
            file_kib: 40_000,
        };
        assert_eq!(parse_status(text), Some(m));
        assert_eq!(parse_status("Name: x\n"), None);
    }

    #[test]
    fn own_process_is_readable() {
        assert!(memory("self").map(|m| m.rss_kib > 0).unwrap_or(false));
        assert!(cpu_time("self").is_some());
    }
}
