//! Pixmaps out as image files: encoding to memory in a named format (PNG, JPEG with a quality,
//! lossless WebP, BMP) and saving atomically.
//!
//! What each format gets:
//! - PNG and WebP keep the pixmap's channels: GRAY8 as grey, RGB888 as RGB, RGBA8888 as RGBA,
//!   and BGRA8888_PREMULTIPLIED unpremultiplied to straight RGBA (rounding as
//!   [`convert::unpremultiply`]). Decoding gives back the very pixels (WebP is lossless), except
//!   that WebP has no grey model: grey decodes as RGB888 with r = g = b.
//! - JPEG has no alpha: pixmaps with alpha are composited over black (the premultiplied colour,
//!   as `pixcache_pixmap_convert` to RGB888 does); grey stays grey.
//! - BMP is written as 24-bit RGB (as Qt writes BMP), alpha composited over black.
//! - GIF and ICO are decode-only here: encoding them is [`ErrorKind::Unsupported`].
//!
//! Saving encodes in memory first, then writes a temporary file in the target's directory
//! (created exclusively, with a unique name), flushes it to disk and renames it over the target:
//! readers see the old file or the new one, never a part, and a failed save leaves the old file
//! as it was and no temporary file behind.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::codecs::bmp::BmpEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder};

use crate::error::{Error, ErrorKind, Result};
use crate::images::convert;
use crate::images::format::Format;
use crate::pixmap::Pixmap;

/// An image file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// PNG (lossless; grey, RGB or RGBA kept).
    Png,
    /// JPEG (lossy; no alpha).
    Jpeg,
    /// GIF (decoded only).
    Gif,
    /// BMP (24-bit RGB when encoding).
    Bmp,
    /// WebP (lossless when encoding).
    WebP,
    /// ICO (decoded only).
    Ico,
}

/// The JPEG quality used when none is given (quality 0).
pub const DEFAULT_JPEG_QUALITY: u8 = 90;

impl FileFormat {
    /// The format a file name's extension names (case-insensitive): png, jpg, jpeg, bmp, webp,
    /// gif, ico.
    pub fn from_extension(path: &Path) -> Option<FileFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "png" => FileFormat::Png,
            "jpg" | "jpeg" => FileFormat::Jpeg,
            "bmp" => FileFormat::Bmp,
            "webp" => FileFormat::WebP,
            "gif" => FileFormat::Gif,
            "ico" => FileFormat::Ico,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            FileFormat::Png => "PNG",
            FileFormat::Jpeg => "JPEG",
            FileFormat::Gif => "GIF",
            FileFormat::Bmp => "BMP",
            FileFormat::WebP => "WebP",
            FileFormat::Ico => "ICO",
        }
    }
}

fn encode_error(e: image::ImageError) -> Error {
    match e {
        image::ImageError::Limits(l) => Error::new(ErrorKind::TooLarge, l.to_string()),
        image::ImageError::IoError(io) => Error::new(ErrorKind::Io, io.to_string()),
        // The format cannot hold this image (a JPEG over 65,535 pixels wide, say).
        other => Error::new(ErrorKind::Unsupported, other.to_string()),
    }
}

/// `pm`'s pixels in `format`, as tightly packed rows (pixmaps pad rows to 4 bytes; encoders
/// want none). Allocated fallibly.
fn packed(pm: &Pixmap, format: Format) -> Result<Vec<u8>> {
    let pm = convert::convert(pm, format)?;
    let row = pm.width() as usize * format.bytes_per_pixel() as usize;
    let height = pm.height() as usize;
    let mut out = Vec::new();
    out.try_reserve_exact(row * height)
        .map_err(|_| Error::new(ErrorKind::OutOfMemory, "cannot allocate pixels to encode"))?;
    if let Some(px) = pm.pixels() {
        for r in px.chunks_exact(pm.stride()).take(height) {
            out.extend_from_slice(&r[..row]);
        }
    }
    Ok(out)
}

/// The packed pixels and colour type `file` gets for `pm` (see the module documentation).
fn pixels_for(pm: &Pixmap, file: FileFormat) -> Result<(Vec<u8>, ExtendedColorType)> {
    let Some(from) = pm.format() else {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "a foreign pixmap's pixels belong to its toolkit; pixcache cannot encode them",
        ));
    };
    let opaque = matches!(from, Format::Rgb888 | Format::Bgrx8888);
    let (format, color) = match (file, from) {
        // Formats without alpha get pixels with alpha composited over black (the premultiplied
        // colour), as pixcache has always saved them.
        (FileFormat::Bmp | FileFormat::Jpeg, _) if !opaque && from != Format::Gray8 => {
            return Ok((convert::to_rgb_over_black(pm)?, ExtendedColorType::Rgb8));
        }
        (FileFormat::Bmp, _) => (Format::Rgb888, ExtendedColorType::Rgb8),
        (_, Format::Gray8) => (Format::Gray8, ExtendedColorType::L8),
        (_, Format::Rgb888 | Format::Bgrx8888) => (Format::Rgb888, ExtendedColorType::Rgb8),
        (FileFormat::Jpeg, _) => (Format::Rgb888, ExtendedColorType::Rgb8),
        (
            _,
            Format::Rgba8888
            | Format::Bgra8888
            | Format::Bgra8888Premultiplied
            | Format::Rgba8888Premultiplied,
        ) => (Format::Rgba8888, ExtendedColorType::Rgba8),
    };
    Ok((packed(pm, format)?, color))
}

/// Encodes a raster pixmap in `file` format. `quality` (JPEG only) is 1 to 100, or 0 for
/// [`DEFAULT_JPEG_QUALITY`]; other formats ignore it.
///
/// Errors: the null pixmap ([`ErrorKind::InvalidArgument`]); a foreign pixmap, GIF or ICO, or
/// an image the format cannot hold ([`ErrorKind::Unsupported`]); a JPEG quality above 100
/// ([`ErrorKind::InvalidArgument`]); [`ErrorKind::OutOfMemory`].
pub fn encode(pm: &Pixmap, file: FileFormat, quality: u32) -> Result<Vec<u8>> {
    if matches!(file, FileFormat::Gif | FileFormat::Ico) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "pixcache decodes {} but does not encode it (encodable: PNG, JPEG, WebP, BMP)",
                file.name()
            ),
        ));
    }
    let quality = match (file, quality) {
        (FileFormat::Jpeg, 0) => DEFAULT_JPEG_QUALITY,
        (FileFormat::Jpeg, q @ 1..=100) => q as u8,
        (FileFormat::Jpeg, q) => {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("JPEG quality {q} is out of range (1 to 100, or 0 for the default)"),
            ))
        }
        _ => 0,
    };
    if pm.is_null() && !pm.is_foreign() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "the null pixmap has no pixels to encode",
        ));
    }
    let (pixels, color) = pixels_for(pm, file)?;
    let (w, h) = (pm.width(), pm.height());
    let mut out = Vec::new();
    let written = match file {
        FileFormat::Png => PngEncoder::new(&mut out).write_image(&pixels, w, h, color),
        FileFormat::Jpeg => {
            JpegEncoder::new_with_quality(&mut out, quality).write_image(&pixels, w, h, color)
        }
        FileFormat::WebP => WebPEncoder::new_lossless(&mut out).write_image(&pixels, w, h, color),
        FileFormat::Bmp => BmpEncoder::new(&mut out).write_image(&pixels, w, h, color),
        FileFormat::Gif | FileFormat::Ico => unreachable!("refused above"),
    };
    written.map_err(encode_error)?;
    Ok(out)
}

/// Encodes `pm` in the format `path`'s extension names (png, jpg/jpeg, bmp, webp) at the
/// default quality and saves it atomically (see [`save_as`]).
pub fn save(pm: &Pixmap, path: &Path) -> Result<()> {
    let file = match FileFormat::from_extension(path) {
        Some(f @ (FileFormat::Png | FileFormat::Jpeg | FileFormat::Bmp | FileFormat::WebP)) => f,
        _ => {
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "cannot encode to \"{ext}\": supported extensions are png, jpg, jpeg, bmp, webp"
                ),
            ));
        }
    };
    save_as(pm, path, file, 0)
}

/// Encodes `pm` as `file` (see [`encode`]) and replaces `path` with it atomically: a temporary
/// file in the same directory is written, flushed to disk (`fsync`) and renamed over `path`;
/// the directory is then flushed too. On any failure the temporary file is removed and an
/// existing `path` is left as it was. A new file gets the permissions the process's umask
/// gives; a replaced regular file keeps its permission bits. A symbolic link at `path` is
/// replaced by the file (its target is not written).
pub fn save_as(pm: &Pixmap, path: &Path, file: FileFormat, quality: u32) -> Result<()> {
    let at_path = |e: Error| Error::new(e.kind(), format!("{}: {}", path.display(), e.message()));
    let bytes = encode(pm, file, quality).map_err(at_path)?;
    write_atomically(path, &bytes).map_err(|e| at_path(Error::new(ErrorKind::Io, e.to_string())))
}

/// Where `path`'s temporary files go, and the name they start with.
fn temp_parts(path: &Path) -> io::Result<(PathBuf, OsString)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // At most 64 bytes of the name, so that a target whose name is near NAME_MAX (255) still
    // gets a temporary name the file system takes.
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    let mut prefix = OsString::from(".");
    prefix.push(std::ffi::OsStr::from_bytes(&bytes[..bytes.len().min(64)]));
    prefix.push(".pixcache-tmp-");
    Ok((dir, prefix))
}

/// A new file that did not exist (`O_CREAT | O_EXCL`), next to `path`, and its name.
fn create_temp(path: &Path) -> io::Result<(File, PathBuf)> {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let (dir, prefix) = temp_parts(path)?;
    let pid = std::process::id();
    for _ in 0..64 {
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut name = prefix.clone();
        name.push(format!("{pid}-{serial}-{nanos:08x}"));
        let temp = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(f) => return Ok((f, temp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no unused temporary file name next to the target",
    ))
}

/// Writes `bytes` to `path` through a temporary file renamed into place.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (mut file, temp) = create_temp(path)?;
    let written = (|| {
        if let Ok(old) = fs::metadata(path) {
            if old.is_file() {
                file.set_permissions(old.permissions())?;
            }
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        drop(fs::remove_file(&temp));
        return Err(e);
    }
    // The rename is durable once the directory is; a failure here loses nothing already done.
    if let Ok(dir) = File::open(temp_parts(path)?.0) {
        drop(dir.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::decode::load_from_memory;

    fn pattern(w: u32, h: u32, format: Format) -> Pixmap {
        let mut pm = Pixmap::new(w, h, Format::Rgba8888).unwrap();
        let stride = pm.stride();
        let px = pm.pixels_mut().unwrap().unwrap();
        for y in 0..h as usize {
            for x in 0..w as usize {
                let i = y * stride + x * 4;
                px[i..i + 4].copy_from_slice(&[
                    (x * 37) as u8,
                    (y * 53) as u8,
                    (x * y) as u8,
                    (x * 11 + y * 7) as u8 | 1,
                ]);
            }
        }
        convert::convert(&pm, format).unwrap()
    }

    #[test]
    fn lossless_formats_round_trip_exactly() {
        for file in [FileFormat::Png, FileFormat::WebP] {
            for format in [Format::Rgba8888, Format::Rgb888, Format::Gray8] {
                let pm = pattern(9, 5, format);
                let back = load_from_memory(&encode(&pm, file, 0).unwrap()).unwrap();
                if (file, format) == (FileFormat::WebP, Format::Gray8) {
                    // WebP has no grey model: grey comes back as RGB with r = g = b.
                    assert_eq!(back.format(), Some(Format::Rgb888));
                    let back = convert::convert(&back, Format::Gray8).unwrap();
                    assert_eq!(back.pixels(), pm.pixels());
                    continue;
                }
                assert_eq!(back.format(), Some(format), "{file:?} {format:?}");
                assert_eq!(back.pixels(), pm.pixels(), "{file:?} {format:?}");
            }
        }
        let rgb = pattern(7, 3, Format::Rgb888);
        let back = load_from_memory(&encode(&rgb, FileFormat::Bmp, 0).unwrap()).unwrap();
        assert_eq!(back.pixels(), rgb.pixels());
    }

    #[test]
    fn premultiplied_pixels_are_encoded_straight() {
        let pm = pattern(6, 4, Format::Bgra8888Premultiplied);
        let back = load_from_memory(&encode(&pm, FileFormat::Png, 0).unwrap()).unwrap();
        assert_eq!(back.format(), Some(Format::Rgba8888));
        let straight = convert::convert(&pm, Format::Rgba8888).unwrap();
        assert_eq!(back.pixels(), straight.pixels());
    }

    #[test]
    fn refusals() {
        let pm = pattern(2, 2, Format::Rgba8888);
        for f in [FileFormat::Gif, FileFormat::Ico] {
            assert_eq!(
                encode(&pm, f, 0).unwrap_err().kind(),
                ErrorKind::Unsupported
            );
        }
        assert_eq!(
            encode(&pm, FileFormat::Jpeg, 101).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        // Other formats ignore the quality.
        assert!(encode(&pm, FileFormat::Png, 101).is_ok());
        assert_eq!(
            encode(&Pixmap::null(), FileFormat::Png, 0)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn a_failed_rename_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("pixcache-encode-{}", std::process::id()));
        drop(fs::remove_dir_all(&dir));
        fs::create_dir_all(dir.join("target.png/inside")).unwrap();
        let pm = pattern(3, 3, Format::Rgb888);
        // A directory cannot be replaced by a file: the rename fails after the write.
        let e = save(&pm, &dir.join("target.png")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(dir.join("target.png/inside").is_dir());
        // And a success leaves only the target.
        save(&pm, &dir.join("ok.webp")).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
