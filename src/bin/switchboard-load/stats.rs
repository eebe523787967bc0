//! Latency samples, percentiles, and the server's CPU and memory from /proc.

use std::time::Duration;

/// Every latency sample in microseconds; exact percentiles at the end.
#[derive(Default)]
pub struct Samples {
    pub us: Vec<u32>,
}

impl Samples {
    pub fn merge(&mut self, other: Samples) {
        self.us.extend(other.us);
    }

    /// Percentiles in milliseconds: p50, p90, p99, p99.9, max.
    pub fn percentiles(&mut self) -> [f64; 5] {
        if self.us.is_empty() {
            return [0.0; 5];
        }
        self.us.sort_unstable();
        let at = |q: f64| {
            let i = ((self.us.len() as f64 - 1.0) * q).round() as usize;
            self.us[i] as f64 / 1000.0
        };
        [
            at(0.50),
            at(0.90),
            at(0.99),
            at(0.999),
            *self.us.last().unwrap_or(&0) as f64 / 1000.0,
        ]
    }
}

/// A reading of a process's CPU time and resident memory.
#[derive(Clone, Copy, Debug)]
pub struct ProcSample {
    pub cpu: Duration,
    pub rss_kib: u64,
}

/// The server's CPU time and resident memory (src/procstat.rs).
pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let s = switchboard::procstat::sample(Some(pid))?;
    Some(ProcSample {
        cpu: s.cpu,
        rss_kib: s.rss_kib,
    })
}

/// Raises the open-file limit to the hard maximum; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
    let soft = lim.rlim_cur as u64;
    soft
}
