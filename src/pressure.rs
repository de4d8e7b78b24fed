//! Watcher: an opt-in thread that trims a cache when the system runs short of memory.
//!
//! Nothing here runs unless asked: a [`Watcher`] is one thread of its own that waits for
//! memory-pressure events from a [`PressureSource`] and calls [`Cache::trim`] at the event's
//! [`TrimLevel`]. It holds a strong reference to its cache ([`WatchedCache`]), so the cache lives
//! at least until the watcher is stopped; stopping (or dropping) it wakes the thread through a
//! pipe in its poll set and joins it, so it returns promptly whether or not an event ever came.
//!
//! Sources:
//! - Linux PSI (`/proc/pressure/memory`, kernel 4.20+, see the kernel's `psi.rst`): two triggers,
//!   each on a file descriptor of its own (the kernel allows one per descriptor), reported by
//!   `poll` as `POLLPRI` at most once per window. [`PSI_SOME_TRIGGER`] (some task stalled on
//!   memory for 15% of a 2 s window) trims at [`TrimLevel::Moderate`]; [`PSI_FULL_TRIGGER`] (all
//!   non-idle tasks stalled at once for 10% of it) at [`TrimLevel::Critical`]. Both firing
//!   together trim once, at `Critical`. Windows are 2 s because kernels since 6.5 let processes
//!   without `CAP_SYS_RESOURCE` register triggers only with windows that are multiples of 2 s
//!   (a 1 s window is refused with `EINVAL`). Where the kernel has no PSI, or refuses triggers
//!   (containers, `psi=0`), starting fails with [`ErrorKind::Unsupported`].
//! - Lines (tests, or a host that learns of pressure its own way): any other path, a FIFO or a
//!   regular file, each line of which is one level word: `moderate`, `low`, `critical` or
//!   `complete` (ASCII case and surrounding blanks ignored; empty lines skipped). Other lines
//!   trim nothing and are counted ([`Watcher::ignored`]). A FIFO is read as lines arrive (the
//!   watcher keeps a write end of its own open, so writers may come and go); a regular file is
//!   followed like `tail -f`, checked every [`FOLLOW_INTERVAL_MS`]: appended lines are read,
//!   and a file rewritten shorter (truncated) is read again from its start. Anything else (a
//!   device, a socket) is refused. A source that never runs dry is read 32 KiB per wake-up, so
//!   a stop is still seen at once.
//!
//! The trims, and the release callbacks of the foreign pixmaps they evict, run on the watcher's
//! thread. A watcher whose source fails (PSI's `POLLERR`: the file went away; a read error)
//! stops by itself and keeps the error ([`Watcher::error`]).

use std::fs::{File, OpenOptions};
use std::io::{self, PipeReader, PipeWriter, Read, Write};
use std::ops::Deref;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::cache::{Cache, TrimLevel};
use crate::error::{Error, ErrorKind, Result};

/// Linux's memory PSI file, the default source.
pub const PSI_MEMORY: &str = "/proc/pressure/memory";

/// Paths under this directory are PSI files; any other path is a line source.
pub const PSI_DIR: &str = "/proc/pressure/";

/// The window both PSI triggers measure stall time over, in µs: 2 s, the shortest window that
/// kernels since 6.5 accept from processes without `CAP_SYS_RESOURCE` (they take multiples of
/// 2 s only). The kernel reports each trigger at most once per window.
pub const PSI_WINDOW_US: u64 = 2_000_000;

/// `some` stall that trims at [`TrimLevel::Moderate`], in µs per [`PSI_WINDOW_US`]: 300 ms, i.e.
/// at least one task waited for memory 15% of the time (reclaim is slowing the system down).
pub const PSI_SOME_STALL_US: u64 = 300_000;

/// `full` stall that trims at [`TrimLevel::Critical`], in µs per [`PSI_WINDOW_US`]: 200 ms, i.e.
/// every non-idle task waited for memory at once 10% of the time (the system is thrashing).
pub const PSI_FULL_STALL_US: u64 = 200_000;

/// The `some` trigger as written to the PSI file: `some 300000 2000000`.
pub const PSI_SOME_TRIGGER: &str = "some 300000 2000000";

/// The `full` trigger as written to the PSI file: `full 200000 2000000`.
pub const PSI_FULL_TRIGGER: &str = "full 200000 2000000";

/// How often a regular file given as a line source is checked for new lines, in ms (a FIFO is
/// woken by its writers instead).
pub const FOLLOW_INTERVAL_MS: i32 = 100;

/// Longest line a line source may send, in bytes; longer ones are ignored (counted).
const MAX_LINE: usize = 64;

/// Where a watcher learns of memory pressure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PressureSource {
    /// A Linux PSI file (`/proc/pressure/memory`), with the triggers [`PSI_SOME_TRIGGER`] and
    /// [`PSI_FULL_TRIGGER`].
    Psi(PathBuf),
    /// A FIFO or file of level words, one a line (see the module documentation).
    Lines(PathBuf),
}

impl PressureSource {
    /// The source a path names: none, or one under [`PSI_DIR`], is PSI ([`PSI_MEMORY`] when
    /// none); any other path is a line source.
    pub fn from_path(path: Option<&Path>) -> Self {
        match path {
            None => PressureSource::Psi(PathBuf::from(PSI_MEMORY)),
            Some(p) if p.starts_with(PSI_DIR) => PressureSource::Psi(p.to_path_buf()),
            Some(p) => PressureSource::Lines(p.to_path_buf()),
        }
    }
}

/// The cache a watcher trims, held strongly: a shared cache by one of its `Arc` counts, or the
/// global cache, which is never dropped.
#[derive(Clone)]
pub enum WatchedCache {
    /// A cache of its own (`Cache::new_shared`, the C API's `pixcache_cache_new`).
    Shared(Arc<Cache>),
    /// The process-wide cache ([`crate::global()`]).
    Static(&'static Cache),
}

impl Deref for WatchedCache {
    type Target = Cache;

    fn deref(&self) -> &Cache {
        match self {
            WatchedCache::Shared(cache) => cache,
            WatchedCache::Static(cache) => cache,
        }
    }
}

impl From<Arc<Cache>> for WatchedCache {
    fn from(cache: Arc<Cache>) -> Self {
        WatchedCache::Shared(cache)
    }
}

impl From<&'static Cache> for WatchedCache {
    fn from(cache: &'static Cache) -> Self {
        WatchedCache::Static(cache)
    }
}

/// The level a line source's word names (ASCII case and surrounding blanks ignored).
pub fn parse_level(word: &str) -> Option<TrimLevel> {
    let word = word.trim();
    [
        ("moderate", TrimLevel::Moderate),
        ("low", TrimLevel::Low),
        ("critical", TrimLevel::Critical),
        ("complete", TrimLevel::Complete),
    ]
    .into_iter()
    .find(|(name, _)| word.eq_ignore_ascii_case(name))
    .map(|(_, level)| level)
}

/// What the watcher's thread and its owner both see.
#[derive(Default)]
struct Shared {
    trims: AtomicUsize,
    ignored: AtomicUsize,
    running: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl Shared {
    fn failed(&self, error: Error) {
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }
}

thread_local! {
    /// On a watcher's thread, the address of its [`Shared`] (0 elsewhere): how `stop` knows it
    /// runs on the thread it would join. (Not `thread::current()`, which allocates a handle that
    /// a C program's main thread never frees.)
    static WATCHING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A running memory-pressure watcher: one thread trimming one cache. Dropping it stops it (see
/// [`Watcher::stop`]).
pub struct Watcher {
    /// Dropped to stop the thread: its read end, in the thread's poll set, then reports a hang-up.
    stop: Option<PipeWriter>,
    thread: Option<JoinHandle<WatchedCache>>,
    shared: Arc<Shared>,
    /// The process that started the thread: a fork's child has no such thread to join.
    pid: u32,
}

impl Watcher {
    /// Opens `source` (registering the PSI triggers) and starts the thread that trims `cache`.
    ///
    /// Errors: [`ErrorKind::Unsupported`] when PSI is unavailable (the file is missing, or the
    /// kernel refuses the trigger: `EINVAL`, `EPERM`, `EACCES`, `EOPNOTSUPP`); [`ErrorKind::Io`]
    /// when a line source cannot be opened, or the thread cannot be started. The message names
    /// the file and the OS error.
    pub fn start(cache: impl Into<WatchedCache>, source: &PressureSource) -> Result<Watcher> {
        let cache = cache.into();
        let (events, description) = match source {
            PressureSource::Psi(path) => (Events::psi(path)?, path.display().to_string()),
            PressureSource::Lines(path) => (Events::lines(path)?, path.display().to_string()),
        };
        let (stop_rx, stop_tx) = io::pipe().map_err(|e| io_error("cannot make a pipe", e))?;
        let shared = Arc::new(Shared {
            running: AtomicBool::new(true),
            ..Shared::default()
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("pixcache-pressure".into())
            .spawn(move || {
                WATCHING.set(Arc::as_ptr(&thread_shared) as usize);
                let mut events = events;
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    events.run(&stop_rx, &cache, &thread_shared)
                }));
                let error = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error),
                    Err(_) => Some(Error::new(
                        ErrorKind::Panic,
                        format!("memory-pressure watcher of {description} panicked"),
                    )),
                };
                if let Some(error) = error {
                    thread_shared.failed(error);
                }
                thread_shared.running.store(false, Ordering::Release);
                // Handed back to `stop`, so a cache whose last reference this is goes on the
                // stopping thread, as it would without a watcher.
                cache
            })
            .map_err(|e| io_error("cannot start the memory-pressure watcher thread", e))?;
        Ok(Watcher {
            stop: Some(stop_tx),
            thread: Some(thread),
            shared,
            pid: std::process::id(),
        })
    }

    /// How many trims the watcher has run (each event trims once, even an empty cache).
    pub fn trims(&self) -> usize {
        self.shared.trims.load(Ordering::Acquire)
    }

    /// How many lines of a line source were not a level word (and trimmed nothing).
    pub fn ignored(&self) -> usize {
        self.shared.ignored.load(Ordering::Acquire)
    }

    /// False once the thread has stopped by itself (its source failed: see [`Watcher::error`]).
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    /// Why the thread stopped by itself, if it did.
    pub fn error(&self) -> Option<Error> {
        self.shared
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the thread and waits for it (a trim under way finishes first), then lets go of the
    /// cache; returns [`Watcher::error`]. Dropping a watcher does the same.
    pub fn stop(mut self) -> Option<Error> {
        self.shutdown();
        self.error()
    }

    fn shutdown(&mut self) {
        drop(self.stop.take()); // the thread's poll wakes with a hang-up
        let Some(thread) = self.thread.take() else {
            return;
        };
        if std::process::id() != self.pid {
            // A fork's child: the thread was not copied, and its handle names the parent's.
            std::mem::forget(thread);
        } else if WATCHING.get() == Arc::as_ptr(&self.shared) as usize {
            // Stopped from its own trim (a release callback): it exits when the trim returns.
            drop(thread);
        } else if let Ok(cache) = thread.join() {
            drop(cache);
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn io_error(what: impl std::fmt::Display, e: io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("{what}: {e}"))
}

/// The watcher's end of a source.
enum Events {
    /// PSI descriptors, each with its trigger registered, and the level each fires.
    Psi {
        path: PathBuf,
        triggers: Vec<(File, TrimLevel)>,
    },
    /// A line source and the partial line read so far.
    Lines {
        path: PathBuf,
        file: File,
        /// A FIFO's write end, held so the FIFO never reports a hang-up between writers; `None`
        /// for a regular file, which is followed instead.
        keep_open: Option<File>,
        line: Vec<u8>,
        /// The current line is longer than [`MAX_LINE`]: skip to its end.
        overlong: bool,
    },
}

impl Events {
    fn psi(path: &Path) -> Result<Events> {
        let mut triggers = Vec::with_capacity(2);
        for (trigger, level) in [
            (PSI_SOME_TRIGGER, TrimLevel::Moderate),
            (PSI_FULL_TRIGGER, TrimLevel::Critical),
        ] {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK) // std adds O_CLOEXEC
                .open(path)
                .map_err(|e| psi_error(path, "cannot open it", e))?;
            // One write, NUL-terminated: the kernel parses one buffer and overwrites its last
            // byte with a NUL.
            let text = format!("{trigger}\0");
            match file.write(text.as_bytes()) {
                Ok(n) if n == text.len() => {}
                Ok(n) => {
                    return Err(Error::new(
                        ErrorKind::Io,
                        format!(
                            "{}: the trigger \"{trigger}\" was written short ({n} bytes)",
                            path.display()
                        ),
                    ))
                }
                Err(e) => {
                    return Err(psi_error(
                        path,
                        &format!("it refused the trigger \"{trigger}\""),
                        e,
                    ))
                }
            }
            triggers.push((file, level));
        }
        Ok(Events::Psi {
            path: path.to_path_buf(),
            triggers,
        })
    }

    fn lines(path: &Path) -> Result<Events> {
        let cannot = |e| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "memory-pressure source {}: cannot open it: {e}",
                    path.display()
                ),
            )
        };
        // Non-blocking: opening a FIFO for reading would wait for a writer.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(cannot)?;
        let kind = file.metadata().map_err(cannot)?.file_type();
        let is_fifo = kind.is_fifo();
        if !is_fifo && !kind.is_file() {
            // A device (`/dev/zero`), socket or directory never ends or never was lines.
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "memory-pressure source {}: neither a FIFO nor a regular file",
                    path.display()
                ),
            ));
        }
        let keep_open = if is_fifo {
            // Succeeds at once: the FIFO has a reader (ours).
            Some(
                OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path)
                    .map_err(cannot)?,
            )
        } else {
            None
        };
        Ok(Events::Lines {
            path: path.to_path_buf(),
            file,
            keep_open,
            line: Vec::with_capacity(MAX_LINE),
            overlong: false,
        })
    }

    /// The thread's loop: returns `Ok` when stopped, an error when the source failed.
    fn run(&mut self, stop: &PipeReader, cache: &Cache, shared: &Shared) -> Result<()> {
        let mut fds = vec![pollfd(stop.as_raw_fd(), libc::POLLIN)];
        let timeout = match self {
            Events::Psi { triggers, .. } => {
                fds.extend(
                    triggers
                        .iter()
                        .map(|(f, _)| pollfd(f.as_raw_fd(), libc::POLLPRI)),
                );
                -1
            }
            Events::Lines {
                file, keep_open, ..
            } => {
                if keep_open.is_some() {
                    fds.push(pollfd(file.as_raw_fd(), libc::POLLIN));
                    -1
                } else {
                    FOLLOW_INTERVAL_MS
                }
            }
        };
        let mut first = true;
        loop {
            // A line source is read when it has something, a followed file before each wait, and
            // either at once.
            if let Events::Lines { .. } = self {
                if first || fds.len() == 1 || fds[1].revents != 0 {
                    self.read_lines(cache, shared)?;
                }
            }
            first = false;
            for fd in &mut fds {
                fd.revents = 0;
            }
            // SAFETY: `fds` is a live, initialised array of `fds.len()` `pollfd`s for the whole
            // call, and each descriptor in it is open (owned by `stop`, `self`) until it returns.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(io_error("memory-pressure watcher: poll failed", e));
            }
            if fds[0].revents != 0 {
                return Ok(()); // stopped: the write end was dropped
            }
            if let Events::Psi { path, triggers } = self {
                // Triggers are listed mildest first: the last that fired is the strongest.
                let mut strongest = None;
                for (fd, (_, level)) in fds[1..].iter().zip(triggers.iter()) {
                    if fd.revents & (libc::POLLERR | libc::POLLNVAL | libc::POLLHUP) != 0 {
                        return Err(Error::new(
                            ErrorKind::Io,
                            format!(
                                "{}: the PSI file went away (poll reported an error)",
                                path.display()
                            ),
                        ));
                    }
                    if fd.revents & libc::POLLPRI != 0 {
                        strongest = Some(*level);
                    }
                }
                if let Some(level) = strongest {
                    trim(cache, level, shared);
                }
            }
        }
    }

    /// Reads what a line source has (to `EAGAIN` or end of file) and trims once per level word.
    fn read_lines(&mut self, cache: &Cache, shared: &Shared) -> Result<()> {
        let Events::Lines {
            path,
            file,
            keep_open,
            line,
            overlong,
        } = self
        else {
            return Ok(());
        };
        if keep_open.is_none() {
            // A followed file rewritten shorter (`echo low > file`): read it from the start.
            use std::io::{Seek, SeekFrom};
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if file.stream_position().is_ok_and(|at| len < at)
                && file.seek(SeekFrom::Start(0)).is_ok()
            {
                line.clear();
                *overlong = false;
            }
        }
        let mut buf = [0u8; 512];
        // At most this much per wake-up, so that a source that never runs dry (a writer in a
        // loop) cannot keep the thread from seeing a stop: the poll loop comes back at once.
        for _ in 0..READ_CHUNKS_PER_WAKE {
            let n = match file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(io_error(
                        format_args!("memory-pressure source {}: read failed", path.display()),
                        e,
                    ))
                }
            };
            for &byte in &buf[..n] {
                if byte != b'\n' {
                    if line.len() < MAX_LINE {
                        line.push(byte);
                    } else {
                        *overlong = true;
                    }
                    continue;
                }
                // Not UTF-8, or overlong: not a level word.
                let word = std::str::from_utf8(line)
                    .ok()
                    .filter(|_| !*overlong)
                    .map(str::trim);
                match word.map(|w| (w, parse_level(w))) {
                    Some(("", _)) => {} // an empty line: skipped
                    Some((_, Some(level))) => trim(cache, level, shared),
                    _ => {
                        shared.ignored.fetch_add(1, Ordering::AcqRel);
                    }
                }
                line.clear();
                *overlong = false;
            }
        }
        Ok(())
    }
}

/// How many 512-byte reads a line source gets per wake-up of the watcher (32 KiB).
const READ_CHUNKS_PER_WAKE: usize = 64;

fn trim(cache: &Cache, level: TrimLevel, shared: &Shared) {
    cache.trim(level);
    shared.trims.fetch_add(1, Ordering::AcqRel);
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn psi_error(path: &Path, what: &str, e: io::Error) -> Error {
    let unavailable = matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::EINVAL | libc::EPERM | libc::EACCES | libc::EOPNOTSUPP)
    );
    let kind = if unavailable {
        ErrorKind::Unsupported
    } else {
        ErrorKind::Io
    };
    Error::new(
        kind,
        format!(
            "memory pressure (PSI) is unavailable: {}: {what}: {e}",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixmap::Pixmap;
    use crate::Format;
    use std::time::{Duration, Instant};

    /// A temporary directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static SERIAL: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "pixcache-pressure-{name}-{}-{}",
                std::process::id(),
                SERIAL.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn fifo(&self) -> PathBuf {
            let path = self.0.join("pressure");
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: `c` is a NUL-terminated path that outlives the call.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A cache holding `n` entries of 16 KB each.
    fn filled(n: usize) -> Arc<Cache> {
        let cache = Cache::new_shared(100_000);
        for i in 0..n {
            let pm = Pixmap::new(64, 64, Format::Bgra8888Premultiplied).unwrap();
            assert!(cache.insert(&format!("e{i}"), pm).is_ok());
        }
        assert_eq!(cache.total_used(), 16 * n as i64);
        cache
    }

    /// Waits up to 5 s for `done`.
    fn eventually(mut done: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        done()
    }

    fn writer(path: &Path) -> File {
        OpenOptions::new().write(true).open(path).unwrap()
    }

    #[test]
    fn the_path_picks_the_source() {
        assert_eq!(
            PressureSource::from_path(None),
            PressureSource::Psi(PSI_MEMORY.into())
        );
        let io = Path::new("/proc/pressure/io");
        assert_eq!(
            PressureSource::from_path(Some(io)),
            PressureSource::Psi(io.into())
        );
        let fifo = Path::new("/tmp/proc/pressure/memory");
        assert_eq!(
            PressureSource::from_path(Some(fifo)),
            PressureSource::Lines(fifo.into())
        );
        assert_eq!(
            PSI_SOME_TRIGGER,
            format!("some {PSI_SOME_STALL_US} {PSI_WINDOW_US}")
        );
        assert_eq!(
            PSI_FULL_TRIGGER,
            format!("full {PSI_FULL_STALL_US} {PSI_WINDOW_US}")
        );
    }

    #[test]
    fn level_words() {
        assert_eq!(parse_level("moderate"), Some(TrimLevel::Moderate));
        assert_eq!(parse_level(" LOW\r"), Some(TrimLevel::Low));
        assert_eq!(parse_level("Critical"), Some(TrimLevel::Critical));
        assert_eq!(parse_level("complete"), Some(TrimLevel::Complete));
        assert_eq!(parse_level("lowish"), None);
        assert_eq!(parse_level(""), None);
    }

    #[test]
    fn a_fifo_trims_at_each_level_written() {
        let dir = TempDir::new("fifo");
        let path = dir.fifo();
        let cache = filled(64); // 1024 KB
        let watcher = Watcher::start(Arc::clone(&cache), &PressureSource::Lines(path.clone()))
            .expect("a FIFO source starts");
        assert!(watcher.is_running());
        let mut w = writer(&path);
        w.write_all(b"moderate\n").unwrap();
        assert!(eventually(|| watcher.trims() == 1));
        assert_eq!(cache.total_used(), 512);
        // A writer may come and go, and write a line in pieces.
        drop(w);
        let mut w = writer(&path);
        w.write_all(b"  Low ").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(watcher.trims(), 1, "half a line trims nothing");
        w.write_all(b"\n").unwrap();
        assert!(eventually(|| watcher.trims() == 2));
        assert_eq!(cache.total_used(), 128);
        // Unknown words and overlong lines are counted and trim nothing; empty lines are skipped.
        let long = "x".repeat(2 * MAX_LINE);
        w.write_all(format!("huge\n\n   \n{long}\nmoderate{long}\n").as_bytes())
            .unwrap();
        assert!(eventually(|| watcher.ignored() == 3));
        assert_eq!(watcher.trims(), 2);
        assert_eq!(cache.total_used(), 128);
        w.write_all(b"complete\n").unwrap();
        assert!(eventually(|| watcher.trims() == 3));
        assert_eq!(cache.total_used(), 0);
        assert_eq!(cache.stats().entries, 0);
        assert!(watcher.is_running());
        assert_eq!(watcher.stop(), None);
    }

    #[test]
    fn a_regular_file_is_followed() {
        let dir = TempDir::new("file");
        let path = dir.0.join("levels");
        std::fs::write(&path, "critical\n").unwrap();
        let cache = filled(64);
        let watcher = Watcher::start(Arc::clone(&cache), &PressureSource::Lines(path.clone()))
            .expect("a file source starts");
        assert!(eventually(|| watcher.trims() == 1));
        assert_eq!(cache.total_used(), 128);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"complete\n").unwrap();
        assert!(eventually(|| watcher.trims() == 2));
        assert_eq!(cache.total_used(), 0);
        drop(watcher);
    }

    /// A followed file is read as `tail -f` reads it: appended lines, and, once it was rewritten
    /// shorter (truncated), again from its start.
    #[test]
    fn a_truncated_file_is_read_again() {
        let dir = TempDir::new("rewrite");
        let path = dir.0.join("levels");
        std::fs::write(&path, "low\nlow\n").unwrap();
        let cache = filled(64);
        let watcher =
            Watcher::start(Arc::clone(&cache), &PressureSource::Lines(path.clone())).unwrap();
        assert!(eventually(|| watcher.trims() == 2));
        std::fs::write(&path, "low\n").unwrap(); // shorter: `echo low > file`
        assert!(eventually(|| watcher.trims() == 3));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"low\n").unwrap(); // `echo low >> file`
        assert!(eventually(|| watcher.trims() == 4));
        std::thread::sleep(Duration::from_millis(3 * FOLLOW_INTERVAL_MS as u64));
        assert_eq!(watcher.trims(), 4, "nothing read twice");
        drop(watcher);
    }

    /// Neither a device that never ends nor a writer that never stops keeps stop waiting.
    #[test]
    fn endless_sources_neither_start_nor_keep_stop_waiting() {
        let Err(e) = Watcher::start(filled(1), &PressureSource::Lines("/dev/zero".into())) else {
            panic!("/dev/zero was accepted as a source");
        };
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(
            e.message().contains("neither a FIFO nor a regular file"),
            "{e}"
        );
        let dir = TempDir::new("flood");
        let path = dir.fifo();
        let watcher = Watcher::start(filled(4), &PressureSource::Lines(path.clone())).unwrap();
        let writing = Arc::new(AtomicBool::new(true));
        let writer = {
            let (path, writing) = (path.clone(), Arc::clone(&writing));
            std::thread::spawn(move || {
                let mut f = OpenOptions::new().write(true).open(&path).unwrap();
                while writing.load(Ordering::Relaxed) {
                    if f.write_all(b"nonsense\n").is_err() {
                        break;
                    }
                }
            })
        };
        assert!(eventually(|| watcher.ignored() > 10_000));
        let started = Instant::now();
        assert_eq!(watcher.stop(), None);
        let took = started.elapsed();
        writing.store(false, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(took < Duration::from_secs(1), "stop took {took:?}");
    }

    #[test]
    fn stop_is_prompt_when_no_event_ever_comes() {
        let dir = TempDir::new("stop");
        for fifo in [true, false] {
            let path = if fifo {
                dir.fifo()
            } else {
                let p = dir.0.join("empty");
                std::fs::write(&p, "").unwrap();
                p
            };
            let watcher = Watcher::start(filled(1), &PressureSource::Lines(path)).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            let started = Instant::now();
            assert_eq!(watcher.stop(), None);
            let took = started.elapsed();
            assert!(took < Duration::from_secs(1), "stop took {took:?}");
        }
    }

    /// The watcher holds the cache: dropping every other reference keeps it alive until stop.
    #[test]
    fn the_watcher_keeps_its_cache() {
        let dir = TempDir::new("keep");
        let path = dir.fifo();
        let cache = filled(4);
        let strong_count_of_cache = || Arc::strong_count(&cache);
        let watcher = Watcher::start(Arc::clone(&cache), &PressureSource::Lines(path)).unwrap();
        assert_eq!(strong_count_of_cache(), 2);
        drop(watcher);
        assert_eq!(strong_count_of_cache(), 1, "stop let go of the cache");
        // The global cache too.
        let dir = TempDir::new("global");
        let watcher = Watcher::start(crate::global(), &PressureSource::Lines(dir.fifo())).unwrap();
        assert_eq!(watcher.stop(), None);
    }

    /// A release callback run by the watcher's own trim may stop the watcher: it is not joined
    /// from its own thread (that would fail or hang); it ends when the trim returns.
    #[test]
    fn a_release_callback_may_stop_its_watcher() {
        let dir = TempDir::new("self-stop");
        let path = dir.fifo();
        let cache = Cache::new_shared(100_000);
        let slot: Arc<Mutex<Option<Watcher>>> = Arc::default();
        let stopped = Arc::new(AtomicBool::new(false));
        let release = {
            let (slot, stopped) = (Arc::clone(&slot), Arc::clone(&stopped));
            Box::new(move || {
                let watcher = slot.lock().unwrap().take().expect("the watcher");
                assert_eq!(watcher.stop(), None);
                stopped.store(true, Ordering::Release);
            })
        };
        let pm = Pixmap::foreign(64, 64, 32, 1, Some(release)).unwrap();
        assert!(cache.insert("foreign", pm).is_ok());
        let watcher =
            Watcher::start(Arc::clone(&cache), &PressureSource::Lines(path.clone())).unwrap();
        *slot.lock().unwrap() = Some(watcher);
        writer(&path).write_all(b"complete\n").unwrap();
        assert!(eventually(|| stopped.load(Ordering::Acquire)));
        assert!(
            eventually(|| Arc::strong_count(&cache) == 1),
            "the thread ended and let go of the cache"
        );
    }

    #[test]
    fn a_missing_line_source_is_an_io_error() {
        let e = Watcher::start(
            filled(1),
            &PressureSource::Lines("/nonexistent/pixcache/fifo".into()),
        )
        .err()
        .expect("no such file");
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(e.message().contains("/nonexistent/pixcache/fifo"), "{e}");
        assert!(e.message().contains("os error 2"), "{e}");
    }

    #[test]
    fn a_missing_psi_file_is_unsupported() {
        let e = Watcher::start(
            filled(1),
            &PressureSource::Psi("/proc/pressure/no-such-resource".into()),
        )
        .err()
        .expect("no such PSI file");
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.message().contains("PSI"), "{e}");
        assert!(
            e.message().contains("/proc/pressure/no-such-resource"),
            "{e}"
        );
        assert!(e.message().contains("os error 2"), "{e}");
    }

    /// On this machine, PSI either takes both triggers (the watcher runs until stopped, and stops
    /// promptly) or refuses with `Unsupported` naming the file. Real pressure is not required.
    #[test]
    fn psi_here_starts_or_says_why_not() {
        let cache = filled(4);
        match Watcher::start(Arc::clone(&cache), &PressureSource::from_path(None)) {
            Ok(watcher) => {
                std::thread::sleep(Duration::from_millis(50));
                assert!(watcher.is_running(), "{:?}", watcher.error());
                let started = Instant::now();
                assert_eq!(watcher.stop(), None);
                assert!(started.elapsed() < Duration::from_secs(1));
            }
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Unsupported | ErrorKind::Io),
                    "{e:?}"
                );
                assert!(e.message().contains(PSI_MEMORY), "{e}");
                assert!(e.message().contains("os error"), "{e}");
                eprintln!("PSI unavailable here: {e}");
            }
        }
        assert_eq!(Arc::strong_count(&cache), 1);
    }
}
