//! Keeps `SWITCHBOARD_MAX_CONNECTIONS` within the open-file limit. Every
//! connection is a descriptor; past `RLIMIT_NOFILE`, `accept` fails and new
//! clients (and `/healthz`) wait in the backlog until they time out, before
//! the limit's 503 could be sent. So at start the soft limit is raised to the
//! hard one, and the connection cap is lowered to what is left after a
//! reserve (see [`reserve`]), so the 503 comes first.

/// Descriptors kept back from connections whatever the worker count: stdio,
/// the listener, the database (file, WAL, shared memory, temporary files),
/// the MQTT broker link, the signal pipe, and HTTP requests that are not
/// sessions (`/healthz`, `/metrics`, REST calls, refused upgrades).
pub const RESERVE_BASE: u64 = 64;

/// Kept back per HTTP worker (and the room thread that goes with it): each
/// runs an event loop with its own epoll and wake-up descriptors.
pub const RESERVE_PER_WORKER: u64 = 8;

/// The descriptors not available to connections.
pub fn reserve(workers: usize) -> u64 {
    RESERVE_BASE + RESERVE_PER_WORKER * workers as u64
}

/// The connection cap that fits in `nofile` descriptors.
pub fn cap(requested: usize, nofile: u64, workers: usize) -> usize {
    let fits = nofile.saturating_sub(reserve(workers));
    (requested as u64).min(fits) as usize
}

/// Raises the soft open-file limit to the hard one; returns the soft limit
/// now in force (`None` if it cannot be read, or is unlimited).
pub fn raise_nofile() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim = want;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
    let soft = lim.rlim_cur as u64;
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(soft)
}

/// Applies the limit to `max_connections`, logging when it lowers it: a
/// warning when the setting was `explicit`, else (the default of 100000 is
/// above most systems' limits) at info level.
pub fn apply(max_connections: usize, workers: usize, explicit: bool) -> usize {
    let Some(nofile) = raise_nofile() else {
        return max_connections;
    };
    let capped = cap(max_connections, nofile, workers);
    if capped < max_connections {
        let level = if explicit {
            log::Level::Warn
        } else {
            log::Level::Info
        };
        log::log!(
            level,
            "SWITCHBOARD_MAX_CONNECTIONS lowered from {max_connections} to {capped}: the open-file \
             limit is {nofile} and {} descriptors are kept for the database, the broker link \
             and HTTP requests (raise it with `ulimit -n`)",
            reserve(workers)
        );
    }
    if capped == 0 {
        log::error!("the open-file limit ({nofile}) leaves no room for connections");
    }
    capped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_the_reserve() {
        assert_eq!(reserve(2), 80);
        assert_eq!(cap(100_000, 1024, 2), 944);
        assert_eq!(cap(100, 1024, 2), 100);
        assert_eq!(cap(100_000, 50, 2), 0);
        assert_eq!(cap(100_000, u64::MAX, 2), 100_000);
    }
}
