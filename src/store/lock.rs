//! One server per database file. SQLite would let two processes share the
//! file, each numbering the same rooms under its own epoch and writing over
//! the other's messages; so the first server to start takes an exclusive
//! `flock` on `<database>.lock` for its whole life, and a second one refuses
//! to start with a message naming the holder. The kernel drops the lock when
//! the process ends, however it ends (a `kill -9` leaves no stale lock).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Held for the life of the server; the lock goes with the file descriptor.
pub struct DbLock {
    _file: File,
}

/// The lock file beside the database `db`.
pub fn path_for(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Takes the lock for `db` or explains who holds it.
pub fn acquire(db: &Path) -> Result<DbLock, String> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let path = path_for(db);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_string()
            } else {
                format!("another Switchboard (pid {holder})")
            };
            return Err(format!(
                "the database {} is in use by {who}: two servers must not share one database; \
                 stop the other server or point SWITCHBOARD_DB at another file",
                db.display()
            ));
        }
        return Err(format!("cannot lock {}: {err}", path.display()));
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(DbLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let db = std::env::temp_dir().join(format!(
            "switchboard-lock-{}-{}.db",
            std::process::id(),
            crate::ids::random_hex(4)
        ));
        let first = acquire(&db).expect("first lock");
        let err = acquire(&db).err().expect("second lock refused");
        assert!(err.contains("in use by another Switchboard (pid"), "{err}");
        drop(first);
        let again = acquire(&db).expect("free again after the holder is gone");
        drop(again);
        let _ = std::fs::remove_file(path_for(&db));
    }
}
