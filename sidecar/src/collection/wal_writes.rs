//! One `pwrite` per write-ahead-log frame instead of two (docs/performance.md, "One write per
//! log frame").
//!
//! SQLite appends a frame to a WAL file as two writes at adjacent offsets: the 24-byte frame
//! header, then the page. A review sync commits about twenty frames, so about forty `pwrite`
//! calls, and for the small header the fixed cost of the call (the page-cache lookup, the
//! file's times) is all there is. This module registers, as SQLite's default, a VFS that is
//! the operating system's own (`unix`) but for one thing: on a file SQLite opened as a WAL, a
//! 24-byte write is held back and written together with the write that follows it at the very
//! next offset, as one `pwrite` of header and page.
//!
//! Nothing else changes, so durability does not: the held-back bytes are written before any
//! other operation on that file reaches the operating system (a sync, a read, a truncation, a
//! write elsewhere, the size, a lock, closing). A crash between the two writes SQLite asked for
//! was always possible, and leaves a torn frame that the log's checksums reject; a crash
//! before the single write leaves the same. An error from the combined write is returned for
//! the page's write, one from a held-back header for the operation that wrote it out.
//!
//! Every other file (collections, `media.db`, Django's database, journals) uses the `unix`
//! methods themselves, untouched.

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The size of a WAL frame header.
const FRAME_HEADER: usize = 24;

/// The VFS this one wraps, found at [`install`].
static REAL: OnceLock<Real> = OnceLock::new();

struct Real {
    vfs: *mut ffi::sqlite3_vfs,
    /// Where a WAL file's own state starts within the file object SQLite allocates: after
    /// the real file's object, aligned.
    state_offset: usize,
}

// SAFETY: the pointer is to SQLite's registered `unix` VFS, which lives as long as the
// process and is only read.
unsafe impl Send for Real {}
unsafe impl Sync for Real {}

/// Registers the VFS as SQLite's default, once per process; connections opened afterwards use
/// it. Fails only if SQLite has no default VFS or refuses the registration, and then nothing
/// changes.
pub fn install() -> anyhow::Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| register().map_err(|err| format!("{err:#}")))
        .clone()
        .map_err(|err| anyhow::anyhow!("installing the WAL write VFS: {err}"))
}

fn register() -> anyhow::Result<()> {
    // SAFETY: `sqlite3_vfs_find` initialises SQLite if needed and returns the default VFS or
    // null; the copy below is leaked, so it outlives every connection, as SQLite requires.
    unsafe {
        let real = ffi::sqlite3_vfs_find(std::ptr::null());
        anyhow::ensure!(!real.is_null(), "SQLite has no default VFS");
        let real_size = usize::try_from((*real).szOsFile)?;
        let state_offset = real_size.next_multiple_of(std::mem::align_of::<WalState>());
        let total = c_int::try_from(state_offset + std::mem::size_of::<WalState>())?;
        let _ = REAL.set(Real {
            vfs: real,
            state_offset,
        });
        let mut ours: ffi::sqlite3_vfs = *real;
        ours.szOsFile = total;
        ours.zName = c"sidecar-unix".as_ptr();
        ours.pNext = std::ptr::null_mut();
        ours.xOpen = Some(open);
        let ours = Box::into_raw(Box::new(ours));
        let rc = ffi::sqlite3_vfs_register(ours, 1);
        anyhow::ensure!(rc == ffi::SQLITE_OK, "sqlite3_vfs_register returned {rc}");
    }
    Ok(())
}

/// What a WAL file keeps beside the real file's object.
#[repr(C)]
struct WalState {
    /// The real file's methods, which every call ends in.
    real: *const ffi::sqlite3_io_methods,
    /// A frame header held back, and where it goes.
    held: bool,
    held_at: i64,
    header: [u8; FRAME_HEADER],
    /// Header and page, put together for their one write.
    joined: Vec<u8>,
}

fn real() -> &'static Real {
    REAL.get().expect("the VFS is only used once installed")
}

/// The state of a WAL file opened through [`open`].
///
/// # Safety
/// `file` must be a WAL file [`open`] set up, not yet closed. SQLite allocated `szOsFile`
/// bytes for it and `open` wrote the state at this offset; one connection uses a file at a
/// time, so nothing else reads or writes the state meanwhile.
unsafe fn state(file: *mut ffi::sqlite3_file) -> *mut WalState {
    // SAFETY: within the object SQLite allocated, as above.
    unsafe {
        file.cast::<u8>()
            .add(real().state_offset)
            .cast::<WalState>()
    }
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let real = real();
    // SAFETY: the real VFS opens its own file object at the start of the one SQLite allocated
    // for ours, which is larger; the state goes after it.
    unsafe {
        let Some(real_open) = (*real.vfs).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        let rc = real_open(real.vfs, name, file, flags, out_flags);
        if rc != ffi::SQLITE_OK || flags & ffi::SQLITE_OPEN_WAL == 0 || (*file).pMethods.is_null() {
            return rc;
        }
        state(file).write(WalState {
            real: (*file).pMethods,
            held: false,
            held_at: 0,
            header: [0; FRAME_HEADER],
            joined: Vec::new(),
        });
        (*file).pMethods = &WAL_METHODS;
        rc
    }
}

/// Writes out a held-back header, if any.
///
/// # Safety
/// As [`state`].
unsafe fn release(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as `state`.
    unsafe {
        let state = state(file);
        if !(*state).held {
            return ffi::SQLITE_OK;
        }
        (*state).held = false;
        let header = (*state).header;
        write_through(file, &header, (*state).held_at)
    }
}

/// One write of `bytes` at `offset` by the real file's method.
///
/// # Safety
/// As [`state`].
unsafe fn write_through(file: *mut ffi::sqlite3_file, bytes: &[u8], offset: i64) -> c_int {
    // SAFETY: as `state`; `bytes` is readable for its length.
    unsafe {
        let (Some(real_write), Ok(length)) =
            ((*(*state(file)).real).xWrite, c_int::try_from(bytes.len()))
        else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        count_write();
        real_write(file, bytes.as_ptr().cast(), length, offset)
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: SQLite passes `amount` readable bytes at `data`; the file is one `open` set up.
    unsafe {
        let state = state(file);
        let Ok(length) = usize::try_from(amount) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), length);
        if (*state).held && offset == (*state).held_at + FRAME_HEADER as i64 {
            (*state).held = false;
            let joined = &mut (*state).joined;
            joined.clear();
            joined.extend_from_slice(&(*state).header);
            joined.extend_from_slice(bytes);
            return write_through(file, joined, (*state).held_at);
        }
        let rc = release(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        if length == FRAME_HEADER {
            (*state).header.copy_from_slice(bytes);
            (*state).held = true;
            (*state).held_at = offset;
            return ffi::SQLITE_OK;
        }
        write_through(file, bytes, offset)
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: the file is one `open` set up; its state is dropped once, after the real close,
    // and SQLite never uses the file again.
    unsafe {
        let released = release(file);
        let state = state(file);
        let closed = match (*(*state).real).xClose {
            Some(close) => close(file),
            None => ffi::SQLITE_OK,
        };
        std::ptr::drop_in_place(state);
        if released != ffi::SQLITE_OK {
            released
        } else {
            closed
        }
    }
}

/// Counts the writes that reach the real file on this thread, for the tests.
fn count_write() {
    #[cfg(test)]
    tests::WRITES.with(|writes| writes.set(writes.get() + 1));
}

/// A method that writes out a held-back header first, then calls the real one; a failure to
/// write the header is the method's result.
macro_rules! after_release {
    ($name:ident, $method:ident, $missing:expr, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: the file is one `open` set up; the arguments go on unchanged.
            unsafe {
                let rc = release(file);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                match (*(*state(file)).real).$method {
                    Some(method) => method(file $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

after_release!(read, xRead, ffi::SQLITE_IOERR_READ, (data: *mut c_void, amount: c_int, offset: i64) -> c_int);
after_release!(truncate, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, (size: i64) -> c_int);
after_release!(sync, xSync, ffi::SQLITE_IOERR_FSYNC, (flags: c_int) -> c_int);
after_release!(file_size, xFileSize, ffi::SQLITE_IOERR_FSTAT, (size: *mut i64) -> c_int);
after_release!(lock, xLock, ffi::SQLITE_IOERR_LOCK, (level: c_int) -> c_int);
after_release!(unlock, xUnlock, ffi::SQLITE_IOERR_UNLOCK, (level: c_int) -> c_int);
after_release!(check_reserved_lock, xCheckReservedLock, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, (out: *mut c_int) -> c_int);
after_release!(file_control, xFileControl, ffi::SQLITE_NOTFOUND, (op: c_int, arg: *mut c_void) -> c_int);
after_release!(shm_map, xShmMap, ffi::SQLITE_IOERR_SHMMAP, (page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int);
after_release!(shm_lock, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, (offset: c_int, n: c_int, flags: c_int) -> c_int);
after_release!(shm_unmap, xShmUnmap, ffi::SQLITE_OK, (delete: c_int) -> c_int);
after_release!(fetch, xFetch, ffi::SQLITE_OK, (offset: i64, amount: c_int, out: *mut *mut c_void) -> c_int);
after_release!(unfetch, xUnfetch, ffi::SQLITE_OK, (offset: i64, page: *mut c_void) -> c_int);

/// Methods that return no status: nothing held back can be written out before them, and none
/// of them touches the file's bytes.
unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: the file is one `open` set up.
    unsafe {
        (*(*state(file)).real)
            .xSectorSize
            .map_or(4096, |method| method(file))
    }
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: the file is one `open` set up.
    unsafe {
        (*(*state(file)).real)
            .xDeviceCharacteristics
            .map_or(0, |method| method(file))
    }
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: the file is one `open` set up.
    unsafe {
        if let Some(method) = (*(*state(file)).real).xShmBarrier {
            method(file);
        }
    }
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rusqlite::{Connection, OpenFlags};

    use super::*;

    thread_local! {
        /// Writes that reached a real WAL file on this thread.
        pub static WRITES: Cell<usize> = const { Cell::new(0) };
    }

    fn writes() -> usize {
        WRITES.with(Cell::get)
    }

    const FRAME: u64 = 4096 + FRAME_HEADER as u64;

    fn wal_db(dir: &std::path::Path) -> Connection {
        install().unwrap();
        let conn = Connection::open(dir.join("t.db")).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn.execute_batch(
            "PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (id integer primary key, v blob);",
        )
        .unwrap();
        conn
    }

    fn wal_len(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join("t.db-wal")).map_or(0, |meta| meta.len())
    }

    #[test]
    fn each_frame_of_a_commit_is_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let conn = wal_db(dir.path());
        let (frames_before, writes_before) = (wal_len(dir.path()), writes());
        conn.execute_batch(
            "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) \
             INSERT INTO t (id, v) SELECT i, randomblob(3000) FROM n; COMMIT;",
        )
        .unwrap();
        let frames = (wal_len(dir.path()) - frames_before) / FRAME;
        assert!(frames >= 20, "{frames} frames");
        // SQLite asks for two writes per frame, header and page.
        assert_eq!(writes() - writes_before, frames as usize);
    }

    #[test]
    fn the_log_stays_a_standard_one_that_survives_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let conn = wal_db(dir.path());
        for i in 0..50 {
            conn.execute("INSERT INTO t (id, v) VALUES (?1, randomblob(5000))", [i])
                .unwrap();
        }
        // The files as a crash would leave them: the log never folded into the file.
        let copy = tempfile::tempdir().unwrap();
        for name in ["t.db", "t.db-wal"] {
            std::fs::copy(dir.path().join(name), copy.path().join(name)).unwrap();
        }
        // Read by SQLite's own VFS, not this one.
        let plain = Connection::open_with_flags_and_vfs(
            copy.path().join("t.db"),
            OpenFlags::SQLITE_OPEN_READ_WRITE,
            "unix",
        )
        .unwrap();
        let rows: i64 = plain
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 50);
        let integrity: String = plain
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
    }

    /// The VFS's methods called directly on a WAL file: a held-back header reaches the file
    /// before any other operation, and at closing.
    #[test]
    fn a_held_header_is_written_before_anything_else() {
        install().unwrap();
        let dir = tempfile::tempdir().unwrap();
        // The real VFS gives a log the permissions of its database, which must exist.
        std::fs::write(dir.path().join("x"), b"").unwrap();
        let path = dir.path().join("x-wal");
        let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        let on_disk = || std::fs::metadata(&path).map_or(0, |meta| meta.len());
        // SAFETY: the VFS is used as SQLite would: an object of `szOsFile` bytes, opened,
        // used through its methods, closed once.
        unsafe {
            let vfs = ffi::sqlite3_vfs_find(c"sidecar-unix".as_ptr());
            assert!(!vfs.is_null());
            let mut memory = vec![0u64; (*vfs).szOsFile as usize / 8 + 1];
            let file = memory.as_mut_ptr().cast::<ffi::sqlite3_file>();
            let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE | ffi::SQLITE_OPEN_WAL;
            let mut out = 0;
            assert_eq!(
                ((*vfs).xOpen.unwrap())(vfs, name.as_ptr(), file, flags, &mut out),
                0
            );
            let methods = &*(*file).pMethods;
            let header = [7u8; FRAME_HEADER];
            let page = [9u8; 4096];
            assert_eq!(
                (methods.xWrite.unwrap())(file, header.as_ptr().cast(), 24, 0),
                0
            );
            assert_eq!(on_disk(), 0, "the header is held back");
            let mut size = 0;
            assert_eq!((methods.xFileSize.unwrap())(file, &mut size), 0);
            assert_eq!(
                (size, on_disk()),
                (24, 24),
                "written out before the size is read"
            );

            let writes_before = writes();
            assert_eq!(
                (methods.xWrite.unwrap())(file, header.as_ptr().cast(), 24, 100),
                0
            );
            assert_eq!(
                (methods.xWrite.unwrap())(file, page.as_ptr().cast(), 4096, 124),
                0
            );
            assert_eq!(writes() - writes_before, 1, "header and page in one write");
            let mut back = vec![0u8; 4220];
            assert_eq!(
                (methods.xRead.unwrap())(file, back.as_mut_ptr().cast(), 4220, 0),
                0
            );
            assert_eq!(&back[..24], &header);
            assert_eq!(&back[100..124], &header);
            assert_eq!(&back[124..], &page);

            // Not followed by its page: written out when the file syncs, or closes.
            assert_eq!(
                (methods.xWrite.unwrap())(file, header.as_ptr().cast(), 24, 4220),
                0
            );
            assert_eq!((methods.xSync.unwrap())(file, ffi::SQLITE_SYNC_NORMAL), 0);
            assert_eq!(on_disk(), 4244);
            assert_eq!(
                (methods.xWrite.unwrap())(file, header.as_ptr().cast(), 24, 4244),
                0
            );
            assert_eq!((methods.xClose.unwrap())(file), 0);
            assert_eq!(on_disk(), 4268);
        }
    }

    #[test]
    fn other_files_keep_the_real_methods() {
        install().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("plain.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (v); INSERT INTO t VALUES (1);")
            .unwrap();
        let writes_before = writes();
        conn.execute_batch("INSERT INTO t VALUES (2)").unwrap();
        assert_eq!(
            writes(),
            writes_before,
            "a rollback-journal file is not a log"
        );
    }
}
