//! The cache key of an image file, as Qt's `QPixmap::load` makes it, and a little stricter: the
//! file's identity (its absolute path, size and modification time, as Qt's; and its device,
//! inode and status-change time, so that a file replaced by one of the same size and time, as
//! `cp -p` or `rsync -t` leave it, or rewritten with its time put back, is new too) and the
//! pixel format asked for. An edited file is loaded again instead of found stale, and the same
//! file asked for in two formats is two entries. The path is made absolute, not canonical (as
//! Qt's `absoluteFilePath`): the same file reached through a symbolic link or `..` is another
//! entry.
//!
//! Keys are UTF-8 (every cache key is), while a Unix path is any bytes: bytes that are not
//! UTF-8, and `%` itself, are written as `%XX`, so that two different paths never share a key.

use std::fmt::Write as _;
use std::path::Path;
use std::time::UNIX_EPOCH;

use crate::error::{Error, ErrorKind, Result};
use crate::images::format::Format;

/// The prefix of every file key: no key a caller makes by hand is likely to start with it.
pub const PREFIX: &str = "pixcache:file:";

/// The key under which `path`, loaded in `format` (`None`: the file's own format, as
/// `decode::load` gives it), is cached. Reads the file's metadata, not its bytes: IO error if
/// it cannot (a missing file).
pub fn file_key(path: &Path, format: Option<Format>) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let absolute = std::path::absolute(path).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot make {} absolute: {e}", path.display()),
        )
    })?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut key = String::with_capacity(PREFIX.len() + absolute.as_os_str().len() + 48);
    key.push_str(PREFIX);
    escape_into(&mut key, absolute.as_os_str().as_encoded_bytes());
    // `|` cannot end an escaped path (it would be written as is, but the fields after it are
    // fixed: size, time, format), so the fields are unambiguous from the end.
    let format = format.map_or(0, Format::number);
    use std::os::unix::fs::MetadataExt;
    let changed = i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
    let _ = write!(
        key,
        "|{}|{modified}|{}:{}:{changed}|{format}",
        meta.len(),
        meta.dev(),
        meta.ino()
    );
    Ok(key)
}

/// Appends `bytes` to `out`, UTF-8 sequences as they are, `%` and every byte that is not part
/// of one as `%XX`.
fn escape_into(out: &mut String, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                push_text(out, text);
                return;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                // `good` is valid UTF-8 (`valid_up_to`).
                push_text(out, std::str::from_utf8(good).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len());
                for b in &rest[..bad] {
                    let _ = write!(out, "%{b:02X}");
                }
                bytes = &rest[bad..];
            }
        }
    }
}

fn push_text(out: &mut String, text: &str) {
    for c in text.chars() {
        if c == '%' {
            out.push_str("%25");
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pixcache-file-key-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn identity_changes_with_size_time_and_format() {
        let d = dir();
        let p = d.join("a.png");
        std::fs::write(&p, b"12345").unwrap();
        let k1 = file_key(&p, None).unwrap();
        assert!(k1.starts_with(PREFIX) && k1.contains(&*d.to_string_lossy()));
        assert_eq!(file_key(&p, None).unwrap(), k1, "stable");
        assert_ne!(file_key(&p, Some(Format::Gray8)).unwrap(), k1);
        assert_ne!(
            file_key(&p, Some(Format::Gray8)).unwrap(),
            file_key(&p, Some(Format::Rgba8888)).unwrap()
        );
        std::fs::write(&p, b"123456").unwrap();
        let k2 = file_key(&p, None).unwrap();
        assert_ne!(k2, k1, "size changed");
        // Same size, another modification time.
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
        assert_ne!(file_key(&p, None).unwrap(), k2, "time changed");
        // Replaced by another file of the same size and time (`cp -p` then `mv`).
        let k3 = file_key(&p, None).unwrap();
        let other = d.join("b.png");
        std::fs::write(&other, b"abcdef").unwrap();
        let f = std::fs::File::options().write(true).open(&other).unwrap();
        f.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
        std::fs::rename(&other, &p).unwrap();
        assert_ne!(file_key(&p, None).unwrap(), k3, "another inode");
        // A relative path names the same file as its absolute form.
        let cwd = std::env::current_dir().unwrap();
        if let Ok(rel) = p.strip_prefix(&cwd) {
            assert_eq!(file_key(rel, None).unwrap(), file_key(&p, None).unwrap());
        }
        assert_eq!(
            file_key(&d.join("missing.png"), None).unwrap_err().kind(),
            ErrorKind::Io
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn paths_that_are_not_utf8_get_distinct_utf8_keys() {
        let mut a = String::new();
        escape_into(&mut a, b"/t/\xff.png");
        let mut b = String::new();
        escape_into(&mut b, b"/t/%FF.png");
        let mut c = String::new();
        escape_into(&mut c, "/t/é.png".as_bytes());
        assert_eq!(a, "/t/%FF.png");
        assert_eq!(b, "/t/%25FF.png");
        assert_eq!(c, "/t/é.png");
        let d = dir().join("nu");
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(std::ffi::OsStr::from_bytes(b"\xfe\xff.png"));
        std::fs::write(&p, b"x").unwrap();
        assert!(file_key(&p, None).unwrap().contains("%FE%FF.png"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
