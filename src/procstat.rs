//! The process's own figures from /proc (Linux): CPU time, memory, open
//! descriptors, start time. `/metrics` renders them under the standard
//! Prometheus `process_*` names; the load tool reads the server's.

use std::fmt::Write;
use std::time::Duration;

/// A reading of a process's CPU time and memory.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// User + system CPU time.
    pub cpu: Duration,
    /// Resident memory (`VmRSS`).
    pub rss_kib: u64,
    pub virtual_bytes: u64,
    /// Start time, in clock ticks after boot.
    pub start_ticks: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` is this process.
pub fn sample(pid: Option<u32>) -> Option<Sample> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_string(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may
    // hold spaces; field 3 (state) is index 0 here.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    let ticks = field(14)? + field(15)?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(Sample {
        cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64),
        rss_kib,
        virtual_bytes: field(23)?,
        start_ticks: field(22)?,
    })
}

/// Clock ticks per second (`_SC_CLK_TCK`).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// Descriptors this process has open.
fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// The soft `RLIMIT_NOFILE`.
fn max_fds() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a plain syscall on a stack struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
    Some(lim.rlim_cur as u64)
}

/// Boot time, seconds since the epoch (`btime` in /proc/stat).
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Appends the `process_*` metrics and `switchboard_build_info`; a figure
/// that cannot be read is left out rather than reported as zero.
pub fn render(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP switchboard_build_info The server's version (always 1).\n\
         # TYPE switchboard_build_info gauge\n\
         switchboard_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    if let Some(s) = sample(None) {
        metric(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            format!("{:.2}", s.cpu.as_secs_f64()),
        );
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            (s.rss_kib * 1024).to_string(),
        );
        metric(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            s.virtual_bytes.to_string(),
        );
        if let Some(boot) = boot_time() {
            let start = boot as f64 + s.start_ticks as f64 / clock_ticks() as f64;
            metric(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since the Unix epoch in seconds.",
                format!("{start:.2}"),
            );
        }
    }
    if let Some(n) = open_fds() {
        metric(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            n.to_string(),
        );
    }
    if let Some(n) = max_fds() {
        metric(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            n.to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    /// This process's own figures are read and plausible.
    #[test]
    fn reads_this_process() {
        let s = super::sample(None).expect("/proc/self readable");
        assert!(s.rss_kib > 0 && s.virtual_bytes >= s.rss_kib * 1024);
        let mut out = String::new();
        super::render(&mut out);
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(
                out.contains(&format!("\n{name} ")),
                "{name} missing:\n{out}"
            );
        }
    }
}
