//! The one error type of the core. The FFI layer maps each kind to a C result code.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, in a form a caller can branch on. New kinds may be added (`Reentrant`,
/// `ProducerFailed` and `WrongThread` were).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A required pointer argument was NULL (raised by the FFI layer only).
    NullArgument,
    /// A string argument was not valid UTF-8.
    InvalidUtf8,
    /// An argument is out of its documented range.
    InvalidArgument,
    /// A size that cannot be represented or is beyond a configured limit.
    TooLarge,
    /// The allocator refused the memory.
    OutOfMemory,
    /// The pixmap costs more than the whole cache limit, so the cache refused it.
    Refused,
    /// A generated key that is not valid in this cache: stale, removed, forged or foreign.
    InvalidKey,
    /// The operation does not apply to this pixmap (e.g. pixel access on a foreign pixmap), or
    /// this system does not offer it (memory-pressure watching without Linux PSI).
    Unsupported,
    /// Reading or writing a file failed.
    Io,
    /// The bytes are not an image this build can decode.
    Decode,
    /// A panic was caught before it could cross the C boundary (a bug in pixcache).
    Panic,
    /// The cache was called from code running under its own lock (a lookup's visit callback);
    /// the call did nothing.
    Reentrant,
    /// A producer of the C API's find-or-insert failed without saying why: it returned false
    /// with no pixcache error of its own set (a producer that did set one passes on its kind).
    ProducerFailed,
    /// A thread-affine cache (`pixcache_local_*`) was called from a thread other than the one
    /// that owns it; the call did nothing.
    WrongThread,
}

/// An error with a one-line message for `pixcache_last_error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
}

impl Error {
    /// An error of `kind` with `message` (one line, no trailing period). A `&'static str`
    /// message costs no allocation, which keeps frequent failures (stale keys) cheap.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The kind, for branching.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Result alias of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
