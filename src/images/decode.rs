//! Images in and out with the `image` crate: decoding files and memory into pixmaps (PNG, JPEG,
//! GIF's first frame, BMP, WebP, ICO) and encoding pixmaps to files (PNG, JPEG, BMP).
//!
//! Decoding is bounded: width, height and the decoder's allocations are limited (by default to
//! 16,384 x 16,384 and 512 MiB; [`set_limits`] changes them for the process), so a decompression
//! bomb or a corrupt file fails with an error instead of a huge allocation, an abort or a hang.

use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::error::{Error, ErrorKind, Result};
use crate::images::convert;
use crate::images::format::Format;
use crate::pixmap::Pixmap;

/// Default largest width or height accepted from a decoder.
pub const DEFAULT_MAX_DIMENSION: u32 = 16_384;
/// Default largest allocation a decoder may make, in bytes.
pub const DEFAULT_MAX_ALLOC: u64 = 512 * 1024 * 1024;

static MAX_WIDTH: AtomicU32 = AtomicU32::new(DEFAULT_MAX_DIMENSION);
static MAX_HEIGHT: AtomicU32 = AtomicU32::new(DEFAULT_MAX_DIMENSION);
static MAX_ALLOC: AtomicU64 = AtomicU64::new(DEFAULT_MAX_ALLOC);

/// Sets the process-wide decoding limits: images wider or taller than the limits, or whose
/// decoding would allocate more than `max_alloc` bytes, are refused. 0 restores a default.
pub fn set_limits(max_width: u32, max_height: u32, max_alloc: u64) {
    let or = |v: u32, d: u32| if v == 0 { d } else { v };
    MAX_WIDTH.store(or(max_width, DEFAULT_MAX_DIMENSION), Ordering::Relaxed);
    MAX_HEIGHT.store(or(max_height, DEFAULT_MAX_DIMENSION), Ordering::Relaxed);
    let alloc = if max_alloc == 0 {
        DEFAULT_MAX_ALLOC
    } else {
        max_alloc
    };
    MAX_ALLOC.store(alloc, Ordering::Relaxed);
}

/// The decoding limits in force: (max width, max height, max allocation in bytes).
pub fn limits_in_force() -> (u32, u32, u64) {
    (
        MAX_WIDTH.load(Ordering::Relaxed),
        MAX_HEIGHT.load(Ordering::Relaxed),
        MAX_ALLOC.load(Ordering::Relaxed),
    )
}

fn limits() -> Limits {
    let (w, h, alloc) = limits_in_force();
    let mut limits = Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(alloc);
    limits
}

fn decode_error(e: image::ImageError) -> Error {
    match e {
        image::ImageError::Limits(l) => {
            Error::new(ErrorKind::TooLarge, format!("image rejected: {l}"))
        }
        // The file ended before the image did: the bytes are wrong, not the reading.
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::new(ErrorKind::Decode, format!("truncated image data: {io}"))
        }
        image::ImageError::IoError(io) => Error::new(ErrorKind::Io, io.to_string()),
        other => Error::new(ErrorKind::Decode, other.to_string()),
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

/// Decodes the file at `path` (format guessed from its contents, then its extension).
pub fn load(path: &Path) -> Result<Pixmap> {
    let reader = ImageReader::open(path)
        .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())))?;
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())))?;
    reader.limits(limits());
    let image = reader.decode().map_err(|e| {
        let e = decode_error(e);
        Error::new(e.kind(), format!("{}: {}", path.display(), e.message()))
    })?;
    from_image(image)
}

/// Decodes an encoded image held in memory.
pub fn load_from_memory(data: &[u8]) -> Result<Pixmap> {
    let mut reader = ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
    if reader.format().is_none() {
        return Err(Error::new(
            ErrorKind::Decode,
            "the data is not in an image format this build decodes (PNG, JPEG, GIF, BMP, WebP, ICO)",
        ));
    }
    reader.limits(limits());
    from_image(reader.decode().map_err(decode_error)?)
}

/// Decodes the file at `path` and converts it to `format`.
pub fn load_as(path: &Path, format: Format) -> Result<Pixmap> {
    convert_within_limits(load(path)?, format)
}

/// Decodes an encoded image held in memory and converts it to `format`.
pub fn load_from_memory_as(data: &[u8], format: Format) -> Result<Pixmap> {
    convert_within_limits(load_from_memory(data)?, format)
}

/// Converts a freshly decoded pixmap, counting the conversion against the allocation limit.
fn convert_within_limits(pm: Pixmap, format: Format) -> Result<Pixmap> {
    if pm.format() != Some(format) {
        let source = pm.pixels().map_or(0, |p| p.len() as u64);
        check_alloc(source + output_bytes(pm.width(), pm.height(), format))?;
    }
    convert::convert(&pm, format)
}

/// Encodes a raster pixmap to `path`, in the format its extension names (`.png`, `.jpg` /
/// `.jpeg`, `.bmp`). Straight RGBA for PNG; JPEG and BMP get RGB composited over black (JPEG has
/// no alpha).
pub fn save(pm: &Pixmap, path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let format = match ext.as_str() {
        "png" => ImageFormat::Png,
        "jpg" | "jpeg" => ImageFormat::Jpeg,
        "bmp" => ImageFormat::Bmp,
        other => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "cannot encode to \"{other}\": supported extensions are png, jpg, jpeg, bmp"
                ),
            ))
        }
    };
    if pm.is_null() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "the null pixmap has no pixels to save",
        ));
    }
    let image = if format == ImageFormat::Png {
        let rgba = convert::to_rgba(pm)?;
        DynamicImage::ImageRgba8(
            image::RgbaImage::from_raw(pm.width(), pm.height(), rgba).ok_or_else(|| {
                Error::new(ErrorKind::InvalidArgument, "pixel buffer size mismatch")
            })?,
        )
    } else {
        // Composited over black, not the straight colour with alpha dropped (which is what
        // converting to RGB888 does): a translucent pixel saves as it looks on black.
        let rgb = convert::to_rgb_over_black(pm)?;
        DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(pm.width(), pm.height(), rgb).ok_or_else(|| {
                Error::new(ErrorKind::InvalidArgument, "pixel buffer size mismatch")
            })?,
        )
    };
    let at_path = |e: Error| Error::new(e.kind(), format!("{}: {}", path.display(), e.message()));
    // Encoded in memory first, so that a failed encoding leaves no file (or an existing file
    // as it was).
    let mut encoded = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut encoded), format)
        .map_err(|e| at_path(encode_error(e)))?;
    let io = |e: std::io::Error| at_path(Error::new(ErrorKind::Io, e.to_string()));
    let mut file = std::fs::File::create(path).map_err(io)?;
    std::io::Write::write_all(&mut file, &encoded).map_err(|e| {
        // A write that failed half way (a full disk) leaves no partial file either.
        drop(std::fs::remove_file(path));
        io(e)
    })
}

/// Converts a decoded image to a pixmap in its natural format: gray stays 8-bit gray, opaque
/// colour becomes RGB888, anything else RGBA8888.
pub fn from_image(image: DynamicImage) -> Result<Pixmap> {
    let (width, height) = (image.width(), image.height());
    if width == 0 || height == 0 {
        return Err(Error::new(
            ErrorKind::Decode,
            format!("the image is {width}x{height}: it has no pixels"),
        ));
    }
    // The decoder's buffer is still alive while its pixels are converted and re-laid out, so
    // both count against the allocation limit.
    let natural = natural_format(&image);
    let decoded = image.as_bytes().len() as u64;
    check_alloc(decoded + output_bytes(width, height, natural))?;
    let (format, width, height, bytes) = match image {
        DynamicImage::ImageLuma8(i) => (Format::Gray8, i.width(), i.height(), i.into_raw()),
        DynamicImage::ImageRgb8(i) => (Format::Rgb888, i.width(), i.height(), i.into_raw()),
        other if !other.color().has_alpha() && other.color().has_color() => {
            let i = other.into_rgb8();
            (Format::Rgb888, i.width(), i.height(), i.into_raw())
        }
        other if !other.color().has_alpha() => {
            let i = other.into_luma8();
            (Format::Gray8, i.width(), i.height(), i.into_raw())
        }
        other => {
            let i = other.into_rgba8();
            (Format::Rgba8888, i.width(), i.height(), i.into_raw())
        }
    };
    from_packed(width, height, format, bytes)
}

/// The format [`from_image`] gives an image.
fn natural_format(image: &DynamicImage) -> Format {
    match image {
        DynamicImage::ImageLuma8(_) => Format::Gray8,
        DynamicImage::ImageRgb8(_) => Format::Rgb888,
        other if !other.color().has_alpha() && other.color().has_color() => Format::Rgb888,
        other if !other.color().has_alpha() => Format::Gray8,
        _ => Format::Rgba8888,
    }
}

/// Bytes a `width` x `height` pixmap of `format` takes (rows padded to 4 bytes).
fn output_bytes(width: u32, height: u32, format: Format) -> u64 {
    let row = u64::from(width) * u64::from(format.bytes_per_pixel());
    ((row + 3) & !3) * u64::from(height)
}

/// Refuses an allocation above the decoding limit, before it is made.
fn check_alloc(bytes: u64) -> Result<()> {
    let (_, _, max_alloc) = limits_in_force();
    if bytes > max_alloc {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("decoding needs {bytes} bytes, above the limit of {max_alloc} bytes"),
        ));
    }
    Ok(())
}

/// A pixmap from tightly packed rows, re-laid to pixcache's 4-byte row alignment when needed.
fn from_packed(width: u32, height: u32, format: Format, packed: Vec<u8>) -> Result<Pixmap> {
    let row = width as usize * format.bytes_per_pixel() as usize;
    let stride = (row + 3) & !3;
    if stride == row {
        return Pixmap::from_bytes(width, height, format, stride, packed);
    }
    let mut pm = Pixmap::new(width, height, format)?;
    if let Some(bytes) = pm.pixels_mut()? {
        for (dst, src) in bytes.chunks_exact_mut(stride).zip(packed.chunks_exact(row)) {
            dst[..row].copy_from_slice(src);
        }
    }
    Ok(pm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, RgbImage, RgbaImage};

    fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn png_round_trips_exactly() {
        let img = RgbaImage::from_fn(5, 3, |x, y| image::Rgba([x as u8, y as u8, 7, 200]));
        let pm = load_from_memory(&encode(
            DynamicImage::ImageRgba8(img.clone()),
            ImageFormat::Png,
        ))
        .unwrap();
        assert_eq!(
            (pm.width(), pm.height(), pm.format()),
            (5, 3, Some(Format::Rgba8888))
        );
        assert_eq!(pm.pixels().unwrap(), img.as_raw().as_slice());
    }

    #[test]
    fn rgb_rows_are_padded() {
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8, y as u8, 9]));
        let pm = load_from_memory(&encode(DynamicImage::ImageRgb8(img), ImageFormat::Bmp)).unwrap();
        assert_eq!(pm.format(), Some(Format::Rgb888));
        assert_eq!(pm.stride(), 12);
        let px = pm.pixels().unwrap();
        assert_eq!(&px[12..18], &[0, 1, 9, 1, 1, 9]);
    }

    #[test]
    fn a_bomb_header_is_refused_before_allocating() {
        // A valid PNG signature and IHDR claiming 100,000 x 100,000 RGBA (40 GB), no data.
        let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32fast::hash(&ihdr).to_be_bytes());
        let e = load_from_memory(&png).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    }

    #[test]
    fn save_then_load_round_trips_png() {
        let dir = std::env::temp_dir().join(format!("pixcache-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = RgbaImage::from_fn(4, 3, |x, y| {
            image::Rgba([x as u8 * 40, y as u8 * 50, 9, 255])
        });
        let pm = load_from_memory(&encode(
            DynamicImage::ImageRgba8(img.clone()),
            ImageFormat::Png,
        ))
        .unwrap();
        let path = dir.join("x.png");
        save(&pm, &path).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(convert::to_rgba(&back).unwrap(), img.into_raw());
        save(&pm, &dir.join("x.jpg")).unwrap();
        assert_eq!(load(&dir.join("x.jpg")).unwrap().width(), 4);
        assert_eq!(
            save(&pm, &dir.join("x.tga")).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn garbage_and_truncation_fail_cleanly() {
        assert_eq!(
            load_from_memory(b"not an image").unwrap_err().kind(),
            ErrorKind::Decode
        );
        let png = encode(
            DynamicImage::ImageRgba8(RgbaImage::new(8, 8)),
            ImageFormat::Png,
        );
        assert!(load_from_memory(&png[..png.len() / 2]).is_err());
        assert_eq!(
            load(Path::new("/nonexistent/x.png")).unwrap_err().kind(),
            ErrorKind::Io
        );
    }
}
