//! Result codes and the per-thread last error (libgit2's model).
//!
//! A failing call stores a result code and a one-line message for the calling thread; every other
//! call settles them for its own outcome when it returns (clears them on success), except the
//! ones that cannot fail, which leave them alone: `pixcache_last_error`,
//! `pixcache_last_result`, `pixcache_result_str`, `pixcache_key_equal`, `pixcache_version`,
//! `pixcache_global` and the `*_free` functions but `pixcache_local_free`, which can be refused (so cleanup between a failing call and reading the error keeps it).
//! So right after any other call, `pixcache_last_error()` is `""` exactly when it succeeded.
//! `pixcache_set_error` sets them on purpose, for code that fails for its own reasons (a
//! `pixcache_find_or_insert_with` producer): it "fails" with the code it is given.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, ErrorKind};

/// What a pixcache call reports. The values are part of the ABI and are never renumbered.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixcacheResult {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL; the message names it.
    NullArgument = 1,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 2,
    /// An argument is outside its documented range.
    InvalidArgument = 3,
    /// A size that cannot be represented or exceeds a limit (e.g. a 2^30 x 2^30 pixmap).
    TooLarge = 4,
    /// The allocator refused the memory.
    OutOfMemory = 5,
    /// The pixmap costs more than the whole cache limit; the cache refused it (as Qt does).
    Refused = 6,
    /// A generated key that is not valid in this cache: stale, removed, forged, or from another cache.
    InvalidKey = 7,
    /// The operation does not apply (e.g. pixel access on a foreign pixmap), or this system does
    /// not offer it (`pixcache_watch_memory_pressure` without Linux PSI).
    Unsupported = 8,
    /// Reading or writing a file failed.
    Io = 9,
    /// The data is not an image this build can decode.
    Decode = 10,
    /// A bug in pixcache panicked; the panic was caught at the boundary.
    Panic = 11,
    /// A cache function was called from inside a visit callback (`pixcache_find_visit` and the
    /// like) on the same cache, which the callback's thread holds locked; the call did nothing.
    Reentrant = 12,
    /// A `pixcache_find_or_insert_with` producer returned false without saying why: its thread's
    /// last result was `PIXCACHE_RESULT_OK` (its last pixcache call, if it made any, succeeded).
    /// The message names the key. A producer that returns false leaving an error (a failed
    /// call's, or one set with `pixcache_set_error`) passes on that error's code instead.
    ProducerFailed = 13,
    /// A thread-affine cache (`pixcache_local_*`) was called from a thread other than the one
    /// that owns it, or from inside its own release callback; the call did nothing.
    WrongThread = 14,
}

impl PixcacheResult {
    const ALL: [PixcacheResult; 15] = [
        PixcacheResult::Ok,
        PixcacheResult::NullArgument,
        PixcacheResult::InvalidUtf8,
        PixcacheResult::InvalidArgument,
        PixcacheResult::TooLarge,
        PixcacheResult::OutOfMemory,
        PixcacheResult::Refused,
        PixcacheResult::InvalidKey,
        PixcacheResult::Unsupported,
        PixcacheResult::Io,
        PixcacheResult::Decode,
        PixcacheResult::Panic,
        PixcacheResult::Reentrant,
        PixcacheResult::ProducerFailed,
        PixcacheResult::WrongThread,
    ];

    /// The code whose value is `code`, if there is one.
    fn from_int(code: c_int) -> Option<Self> {
        PixcacheResult::ALL
            .into_iter()
            .find(|r| *r as c_int == code)
    }

    fn from_kind(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::NullArgument => PixcacheResult::NullArgument,
            ErrorKind::InvalidUtf8 => PixcacheResult::InvalidUtf8,
            ErrorKind::InvalidArgument => PixcacheResult::InvalidArgument,
            ErrorKind::TooLarge => PixcacheResult::TooLarge,
            ErrorKind::OutOfMemory => PixcacheResult::OutOfMemory,
            ErrorKind::Refused => PixcacheResult::Refused,
            ErrorKind::InvalidKey => PixcacheResult::InvalidKey,
            ErrorKind::Unsupported => PixcacheResult::Unsupported,
            ErrorKind::Io => PixcacheResult::Io,
            ErrorKind::Decode => PixcacheResult::Decode,
            ErrorKind::Panic => PixcacheResult::Panic,
            ErrorKind::Reentrant => PixcacheResult::Reentrant,
            ErrorKind::ProducerFailed => PixcacheResult::ProducerFailed,
            ErrorKind::WrongThread => PixcacheResult::WrongThread,
        }
    }

    /// The error kind a failure with this code is made of (`None` for `Ok`): the inverse of
    /// [`PixcacheResult::from_kind`].
    fn kind(self) -> Option<ErrorKind> {
        Some(match self {
            PixcacheResult::Ok => return None,
            PixcacheResult::NullArgument => ErrorKind::NullArgument,
            PixcacheResult::InvalidUtf8 => ErrorKind::InvalidUtf8,
            PixcacheResult::InvalidArgument => ErrorKind::InvalidArgument,
            PixcacheResult::TooLarge => ErrorKind::TooLarge,
            PixcacheResult::OutOfMemory => ErrorKind::OutOfMemory,
            PixcacheResult::Refused => ErrorKind::Refused,
            PixcacheResult::InvalidKey => ErrorKind::InvalidKey,
            PixcacheResult::Unsupported => ErrorKind::Unsupported,
            PixcacheResult::Io => ErrorKind::Io,
            PixcacheResult::Decode => ErrorKind::Decode,
            PixcacheResult::Panic => ErrorKind::Panic,
            PixcacheResult::Reentrant => ErrorKind::Reentrant,
            PixcacheResult::ProducerFailed => ErrorKind::ProducerFailed,
            PixcacheResult::WrongThread => ErrorKind::WrongThread,
        })
    }

    fn description(self) -> &'static CStr {
        match self {
            PixcacheResult::Ok => c"success",
            PixcacheResult::NullArgument => c"a required pointer argument was NULL",
            PixcacheResult::InvalidUtf8 => c"a string argument was not valid UTF-8",
            PixcacheResult::InvalidArgument => c"an argument was out of range",
            PixcacheResult::TooLarge => c"a size was too large",
            PixcacheResult::OutOfMemory => c"out of memory",
            PixcacheResult::Refused => c"the pixmap costs more than the cache limit",
            PixcacheResult::InvalidKey => c"the key is not valid in this cache",
            PixcacheResult::Unsupported => {
                c"the operation is not supported (for this pixmap, or on this system)"
            }
            PixcacheResult::Io => c"an I/O error occurred",
            PixcacheResult::Decode => c"the data could not be decoded as an image",
            PixcacheResult::Panic => c"internal error (caught panic)",
            PixcacheResult::Reentrant => c"the cache was called from inside its own visit callback",
            PixcacheResult::ProducerFailed => {
                c"a find-or-insert producer failed without saying why"
            }
            PixcacheResult::WrongThread => c"the thread-affine cache belongs to another thread",
        }
    }
}

// This thread's last error, in two thread-locals:
// - the result code, settled by every call (a success while no thread holds an error has
//   nothing to settle and skips it, see `THREADS_WITH_ERROR`): a `Cell` with no destructor is
//   the cheapest thread-local there is (no lazy destructor registration to check on each access), and it
//   stays usable while the thread's destructors run (a C++ `thread_local` whose destructor frees
//   a pixmap must not make pixcache panic);
// - the message and its terminating NUL, meaningful only while the code is not `Ok`, touched
//   only when a call fails or the message is read, and reused from one error to the next, so
//   reporting an error allocates nothing once the buffer is big enough. Reached with `try_with`:
//   once the thread's destructors have dropped it, errors simply have no message.
thread_local! {
    static LAST_CODE: Cell<PixcacheResult> = const { Cell::new(PixcacheResult::Ok) };
    static LAST_MESSAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// How many threads may hold a result code other than `Ok`: an upper bound, never too low.
///
/// Clearing the code on success is the one thing every call does, and a thread-local in a
/// shared library costs a call to `__tls_get_addr`. While this is zero, no thread holds an
/// error, so a successful call has nothing to clear and skips the thread-local altogether.
///
/// Why a relaxed load is enough: a thread asks only about its own code. It counted itself in
/// (by the increment in [`set_code`]) before its code left `Ok`, in its own program order, so its
/// later load sees that increment or a later value; and every decrement is some thread counting
/// *itself* out after its own increment, so no value this thread can load drops below its own
/// contribution while its code is not `Ok`. A thread that exits holding an error never counts
/// itself out: the bound then stays above zero and successful calls take the thread-local path
/// (correct, about a nanosecond slower), as they did before this counter existed.
///
/// On a cache line of its own: other threads write their counters (live pixmaps, key serials)
/// often, and this is read on every successful call.
static THREADS_WITH_ERROR: Padded = Padded(AtomicUsize::new(0));

#[repr(align(64))]
struct Padded(AtomicUsize);

/// Sets this thread's code, keeping [`THREADS_WITH_ERROR`] true: counted in before the code
/// leaves `Ok`, counted out after it is back.
fn set_code(code: PixcacheResult) -> PixcacheResult {
    let counter = &THREADS_WITH_ERROR.0;
    let old = LAST_CODE.get();
    let (was_ok, is_ok) = (old == PixcacheResult::Ok, code == PixcacheResult::Ok);
    if was_ok && !is_ok {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    LAST_CODE.set(code);
    if !was_ok && is_ok {
        let before = counter.fetch_sub(1, Ordering::Relaxed);
        debug_assert!(before != 0, "a thread counted out that was not counted in");
    }
    old
}

#[inline(always)]
pub(crate) fn clear_last_error() {
    if THREADS_WITH_ERROR.0.load(Ordering::Relaxed) != 0 {
        clear_code();
    }
}

/// Kept out of line, so each call site holds just the load and the branch. Not `#[cold]`: once
/// a thread has exited holding an error, every success comes here.
#[inline(never)]
fn clear_code() {
    set_code(PixcacheResult::Ok);
}

/// The thread's last error, taken out (for [`restore_last_error`]).
pub(crate) struct SavedError(PixcacheResult, Vec<u8>);

pub(crate) fn take_last_error() -> SavedError {
    let code = set_code(PixcacheResult::Ok);
    let message = LAST_MESSAGE
        .try_with(|m| m.try_borrow_mut().map(|mut m| std::mem::take(&mut *m)))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    SavedError(code, message)
}

pub(crate) fn restore_last_error(saved: SavedError) {
    set_code(saved.0);
    let _ = LAST_MESSAGE.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            *m = saved.1;
        }
    });
}

pub(crate) fn set_last_error(error: &Error) {
    set_code(PixcacheResult::from_kind(error.kind()));
    let _ = LAST_MESSAGE.try_with(|m| {
        if let Ok(mut message) = m.try_borrow_mut() {
            message.clear();
            // Never abort while reporting (memory may be what ran out): if the buffer cannot
            // grow, report a fixed message that fits in any buffer we already have, or none.
            let text = error.message().as_bytes();
            let text: &[u8] = if message.try_reserve(text.len() + 1).is_ok() {
                text
            } else if message.capacity() >= 14 {
                b"out of memory"
            } else {
                return; // no room even for that: the code is set, the message reads ""
            };
            // One line, and no interior NUL that would cut the C string short.
            message.extend(text.iter().map(|&b| match b {
                b'\0' | b'\n' | b'\r' => b' ',
                b => b,
            }));
            message.push(0);
        }
    });
}

/// This thread's last error, code and message, as an [`Error`]; `None` while its last result is
/// `Ok`. (What a producer left behind, `cache.rs`.)
pub(crate) fn last_error() -> Option<Error> {
    let kind = LAST_CODE.get().kind()?;
    // SAFETY: pixcache_last_error returns a valid NUL-terminated string.
    let message = unsafe { CStr::from_ptr(pixcache_last_error()) };
    Some(Error::new(kind, message.to_string_lossy().into_owned()))
}

/// The last error's message as a Rust string (tests).
#[cfg(test)]
pub(crate) fn last_error_message() -> String {
    let ptr = pixcache_last_error();
    // SAFETY: pixcache_last_error returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// The message of the last call on this thread that failed, or `""` if the last call succeeded.
///
/// Never NULL. The text is one line, UTF-8, and stays valid until the next pixcache call on this
/// thread (other than `pixcache_last_error`, `pixcache_last_result` and `pixcache_result_str`).
/// Copy it if you need it longer.
#[no_mangle]
pub extern "C" fn pixcache_last_error() -> *const c_char {
    if LAST_CODE.get() == PixcacheResult::Ok {
        return c"".as_ptr();
    }
    LAST_MESSAGE
        .try_with(|m| match m.try_borrow() {
            Ok(m) if !m.is_empty() => m.as_ptr().cast(),
            _ => c"".as_ptr(),
        })
        .unwrap_or(c"".as_ptr())
}

/// The result code of the last call on this thread: `PIXCACHE_RESULT_OK` if it succeeded.
#[no_mangle]
pub extern "C" fn pixcache_last_result() -> PixcacheResult {
    LAST_CODE.get()
}

/// Sets this thread's last result to `code` and its message to `message`, as a call failing with
/// `code` would: for producers and callbacks that fail for their own reasons and want their
/// caller to see why. A `pixcache_find_or_insert_with` producer that calls it and then returns
/// false passes `code` and `message` on to its caller and to every thread waiting for it (rather
/// than `PIXCACHE_RESULT_PRODUCER_FAILED`). Make it the producer's last pixcache call: any later
/// call settles the last result again (a success clears it; a `*_free` leaves it alone).
///
/// `code` is a `PixcacheResult`, taken as an integer (as by `pixcache_result_str`), so any value
/// is safe: one that is no result code sets `PIXCACHE_RESULT_INVALID_ARGUMENT` instead, with a
/// message naming it. `PIXCACHE_RESULT_OK` clears the last error (`message` is not used).
/// `message` may be NULL or `""`: the message is then `pixcache_result_str(code)`. It is copied;
/// bytes that are not UTF-8 become U+FFFD and line breaks become spaces (the message stays one
/// line).
#[no_mangle]
pub unsafe extern "C" fn pixcache_set_error(code: c_int, message: *const c_char) {
    super::boundary::call((), || {
        let Some(result) = PixcacheResult::from_int(code) else {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("pixcache_set_error: {code} is not a pixcache result code"),
            ));
        };
        let Some(kind) = result.kind() else {
            return Ok(()); // OK: settled as a success, which clears
        };
        let text = if message.is_null() {
            &[][..]
        } else {
            // SAFETY: C API contract (module docs of `ffi`): a string is NULL or NUL-terminated.
            unsafe { CStr::from_ptr(message) }.to_bytes()
        };
        Err(if text.is_empty() {
            // The descriptions are ASCII.
            Error::new(kind, result.description().to_str().unwrap_or_default())
        } else {
            Error::new(kind, String::from_utf8_lossy(text).into_owned())
        })
    })
}

/// A static, human-readable description of a result code (taken as an integer, so any value is
/// safe to pass). Unknown codes give `"unknown result code"`. Never NULL; never freed.
#[no_mangle]
pub extern "C" fn pixcache_result_str(code: c_int) -> *const c_char {
    PixcacheResult::from_int(code).map_or(c"unknown result code".as_ptr(), |r| {
        r.description().as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ALL` holds every code once, numbered 0, 1, 2, ... in order (so `pixcache_result_str`
    /// and `pixcache_set_error` know every code), and every code but `Ok` is some error kind's,
    /// whose code it is in turn.
    #[test]
    fn every_code_is_listed_and_maps_to_its_kind_and_back() {
        for (i, code) in PixcacheResult::ALL.into_iter().enumerate() {
            assert_eq!(code as usize, i, "{code:?}");
            assert_eq!(PixcacheResult::from_int(i as c_int), Some(code));
            match code.kind() {
                None => assert_eq!(code, PixcacheResult::Ok),
                Some(kind) => assert_eq!(PixcacheResult::from_kind(kind), code),
            }
        }
        let next = PixcacheResult::ALL.len() as c_int;
        assert_eq!(PixcacheResult::from_int(next), None);
        assert_eq!(PixcacheResult::from_int(-1), None);
    }

    /// What `pixcache_set_error` sets is what `last_error` (a producer's failure) reads back.
    #[test]
    fn set_error_is_what_last_error_reads() {
        // SAFETY: a C string.
        unsafe { pixcache_set_error(PixcacheResult::Io as c_int, c"gone".as_ptr()) };
        let e = last_error().expect("an error");
        assert_eq!((e.kind(), e.message()), (ErrorKind::Io, "gone"));
        // SAFETY: NULL is allowed.
        unsafe { pixcache_set_error(PixcacheResult::Ok as c_int, std::ptr::null()) };
        assert_eq!(last_error(), None);
        assert_eq!(last_error_message(), "");
    }
}
