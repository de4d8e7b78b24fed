//! Images in and out with the `image` crate: decoding files and memory into pixmaps (PNG, JPEG,
//! GIF's first frame, BMP, WebP, ICO) and encoding pixmaps to files (PNG, JPEG, BMP).
//!
//! Decoding is bounded: width, height and the decoder's allocations are limited (by default to
//! 16,384 x 16,384 and 512 MiB; [`set_limits`] changes them for the process), so a decompression
//! bomb or a corrupt file fails with an error instead of a huge allocation, an abort or a hang.
//! The size in the file's header is checked against the limits before a decoder is made
//! (`header.rs`), so a size no decoder would take (a BMP over 65,535 pixels) is `TooLarge` too,
//! with the dimensions in the message. [`LoadOptions`] carries limits for one call.
//!
//! Loading applies the EXIF orientation (JPEG, PNG `eXIf`, WebP) as browsers do, unless the
//! options turn it off. [`image_info`] reads a header alone: format, size, alpha, orientation.

use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

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

mod header;

use header::Header;

/// How one load decodes: the format to convert to, whether to apply the EXIF orientation, and
/// the limits (for this call only; [`LoadOptions::in_force`] takes the process-wide ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Convert to this format; `None` keeps the image's natural format (see [`from_image`]).
    pub format: Option<Format>,
    /// Turn the image as its EXIF orientation says (as browsers show it).
    pub apply_orientation: bool,
    /// Largest width accepted, as stored in the file (before orientation).
    pub max_width: u32,
    /// Largest height accepted, as stored in the file (before orientation).
    pub max_height: u32,
    /// Largest allocation decoding and converting may make, in bytes, all buffers alive at once
    /// counted together.
    pub max_alloc: u64,
}

impl LoadOptions {
    /// The process-wide limits in force, the natural format, orientation applied: what
    /// [`load`] does.
    pub fn in_force() -> Self {
        let (max_width, max_height, max_alloc) = limits_in_force();
        LoadOptions {
            format: None,
            apply_orientation: true,
            max_width,
            max_height,
            max_alloc,
        }
    }

    fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        limits.max_image_width = Some(self.max_width);
        limits.max_image_height = Some(self.max_height);
        limits.max_alloc = Some(self.max_alloc);
        limits
    }
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions::in_force()
    }
}

fn decode_error(e: image::ImageError, header: Option<&Header>) -> Error {
    match e {
        image::ImageError::Limits(l) => Error::new(
            ErrorKind::TooLarge,
            match header {
                Some(h) => format!(
                    "image rejected ({}x{} pixels per its {:?} header): {l}",
                    h.width, h.height, h.format
                ),
                None => format!("image rejected: {l}"),
            },
        ),
        // The file ended before the image did: the bytes are wrong, not the reading.
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::new(ErrorKind::Decode, format!("truncated image data: {io}"))
        }
        image::ImageError::IoError(io) => Error::new(ErrorKind::Io, io.to_string()),
        other => Error::new(ErrorKind::Decode, other.to_string()),
    }
}

/// How many bytes of a file are read for its header: enough for every format's size and, in
/// practice, for the metadata before a JPEG's frame or a PNG's image data.
const HEADER_BYTES: u64 = 1 << 20;

/// The message of a failure about the file at `path`, naming it.
fn at_path(path: &Path) -> impl Fn(Error) -> Error + '_ {
    move |e| Error::new(e.kind(), format!("{}: {}", path.display(), e.message()))
}

fn io_error(e: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, e.to_string())
}

/// Opens `path`: its first bytes (at most `max` of them), the reader positioned at the start,
/// and the format its extension names (used when the contents name none).
fn open(path: &Path, max: u64) -> Result<(BufReader<std::fs::File>, Vec<u8>, Option<ImageFormat>)> {
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let mut prefix = Vec::new();
    (&mut file)
        .take(max)
        .read_to_end(&mut prefix)
        .map_err(io_error)?;
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let by_extension = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(ImageFormat::from_extension);
    Ok((BufReader::new(file), prefix, by_extension))
}

/// A reader over `inner` with its format guessed from the contents, then `fallback`.
fn reader<R: BufRead + Seek>(inner: R, fallback: Option<ImageFormat>) -> Result<ImageReader<R>> {
    let mut reader = ImageReader::new(inner);
    if let Some(f) = fallback {
        reader.set_format(f);
    }
    let reader = reader.with_guessed_format().map_err(io_error)?;
    if reader.format().is_none() {
        return Err(Error::new(
            ErrorKind::Decode,
            "the data is not in an image format this build decodes (PNG, JPEG, GIF, BMP, WebP, ICO)",
        ));
    }
    Ok(reader)
}

/// Decodes the file at `path` (format guessed from its contents, then its extension).
pub fn load(path: &Path) -> Result<Pixmap> {
    load_with(path, &LoadOptions::in_force())
}

/// Decodes an encoded image held in memory.
pub fn load_from_memory(data: &[u8]) -> Result<Pixmap> {
    load_from_memory_with(data, &LoadOptions::in_force())
}

/// Decodes the file at `path` and converts it to `format`.
pub fn load_as(path: &Path, format: Format) -> Result<Pixmap> {
    load_with(
        path,
        &LoadOptions {
            format: Some(format),
            ..LoadOptions::in_force()
        },
    )
}

/// Decodes an encoded image held in memory and converts it to `format`.
pub fn load_from_memory_as(data: &[u8], format: Format) -> Result<Pixmap> {
    load_from_memory_with(
        data,
        &LoadOptions {
            format: Some(format),
            ..LoadOptions::in_force()
        },
    )
}

/// Decodes the file at `path` as `options` say.
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Pixmap> {
    let (file, prefix, by_extension) = open(path, HEADER_BYTES).map_err(at_path(path))?;
    reader(file, by_extension)
        .and_then(|r| decode_with(r, &prefix, options))
        .map_err(at_path(path))
}

/// Decodes an encoded image held in memory as `options` say.
pub fn load_from_memory_with(data: &[u8], options: &LoadOptions) -> Result<Pixmap> {
    decode_with(reader(Cursor::new(data), None)?, data, options)
}

/// Refuses, before any decoder is made, a size the header gives that is over the limits or
/// over the decoder's own cap, or that needs more than the allocation limit even at one byte a
/// pixel (every decoded image takes at least that).
fn check_header(h: &Header, options: &LoadOptions) -> Result<()> {
    let (w, ht) = (h.width, h.height);
    if w > options.max_width || ht > options.max_height {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "the image is {w}x{ht} pixels (per its {:?} header), above the limit of {}x{}",
                h.format, options.max_width, options.max_height
            ),
        ));
    }
    if h.over_decoder_cap {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "the image is {w}x{ht} pixels (per its {:?} header): the {:?} decoder takes at \
                 most {cap}x{cap}",
                h.format,
                ImageFormat::Bmp,
                cap = header::BMP_DECODER_CAP
            ),
        ));
    }
    let least = u64::from(w) * u64::from(ht);
    if least > options.max_alloc {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "the image is {w}x{ht} pixels (per its {:?} header): decoding needs at least \
                 {least} bytes, above the limit of {} bytes",
                h.format, options.max_alloc
            ),
        ));
    }
    Ok(())
}

/// Decodes what `reader` reads (`prefix`: its first bytes) as `options` say.
fn decode_with<R: BufRead + Seek>(
    reader: ImageReader<R>,
    prefix: &[u8],
    options: &LoadOptions,
) -> Result<Pixmap> {
    let image = decode_image_with(reader, prefix, options)?;
    let pm = from_image_within(image, options.max_alloc)?;
    match options.format {
        Some(format) => convert_within_limits(pm, format, options.max_alloc),
        None => Ok(pm),
    }
}

/// The file at `path` decoded as `options` say (limits, header checks, orientation), as an
/// `image` crate image, before it becomes a pixmap (for callers that scale it first:
/// thumbnail.rs). `options.format` is not applied.
pub fn load_image_with(path: &Path, options: &LoadOptions) -> Result<DynamicImage> {
    let (file, prefix, by_extension) = open(path, HEADER_BYTES).map_err(at_path(path))?;
    reader(file, by_extension)
        .and_then(|r| decode_image_with(r, &prefix, options))
        .map_err(at_path(path))
}

/// [`decode_with`] up to the decoded, oriented image.
fn decode_image_with<R: BufRead + Seek>(
    mut reader: ImageReader<R>,
    prefix: &[u8],
    options: &LoadOptions,
) -> Result<DynamicImage> {
    let header = reader.format().and_then(|f| header::sniff(f, prefix));
    if let Some(h) = &header {
        check_header(h, options)?;
    }
    let error = |e| decode_error(e, header.as_ref());
    let mut limits = options.limits();
    reader.limits(limits.clone());
    let mut decoder = reader.into_decoder().map_err(error)?;
    // As `ImageReader::decode` does: the decoder's own buffer counts against the limit.
    limits.reserve(decoder.total_bytes()).map_err(error)?;
    // The decoder allocates that buffer infallibly (an abort if the allocator refuses): ask the
    // allocator first, so that limits raised past what the machine has give OUT_OF_MEMORY.
    probe_alloc(decoder.total_bytes())?;
    decoder.set_limits(limits).map_err(error)?;
    let orientation = if options.apply_orientation {
        // An orientation that cannot be read is no orientation (as browsers treat it).
        decoder.orientation().unwrap_or(Orientation::NoTransforms)
    } else {
        Orientation::NoTransforms
    };
    let mut image = DynamicImage::from_decoder(decoder).map_err(error)?;
    if matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    ) {
        // Turning a quarter makes a second buffer while the first is alive.
        check_alloc_within(2 * image.as_bytes().len() as u64, options.max_alloc)?;
    }
    image.apply_orientation(orientation);
    Ok(image)
}

/// Fails with [`ErrorKind::OutOfMemory`] when the allocator refuses `bytes` now (the memory is
/// given back at once): for buffers a decoder then allocates without a way to fail.
pub(crate) fn probe_alloc(bytes: u64) -> Result<()> {
    let refused = || {
        Error::new(
            ErrorKind::OutOfMemory,
            format!("decoding needs {bytes} bytes, which cannot be allocated"),
        )
    };
    let n = usize::try_from(bytes).map_err(|_| refused())?;
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(n).map_err(|_| refused())
}

/// An image file's format, as [`image_info`] reports it (the one enum of file formats, with
/// what encoding does with each, lives in encode.rs).
pub use super::encode::FileFormat;

/// What [`image_info`] reads from a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// The file's format.
    pub format: FileFormat,
    /// Width as [`load`] gives the image: after its EXIF orientation.
    pub width: u32,
    /// Height after the EXIF orientation.
    pub height: u32,
    /// Width as stored in the file, before orientation (what the limits are checked against).
    pub stored_width: u32,
    /// Height as stored in the file.
    pub stored_height: u32,
    /// Whether the decoded image has an alpha channel (then [`load`]'s natural format is
    /// RGBA8888); `None` when the header does not say.
    pub has_alpha: Option<bool>,
    /// The EXIF orientation, 1 to 8 (1: none, or no EXIF).
    pub orientation: u8,
}

/// Reads the header of the image file at `path`: no pixel is decoded, and at most the first
/// megabyte is read. The decoding limits do not apply (the size of an image too large to load
/// is reported); the allocation limit bounds what reading the header may allocate.
pub fn image_info(path: &Path) -> Result<ImageInfo> {
    let (_, prefix, by_extension) = open(path, HEADER_BYTES).map_err(at_path(path))?;
    info(&prefix, by_extension).map_err(at_path(path))
}

/// [`image_info`] for an encoded image held in memory (of which at most the first megabyte is
/// read).
pub fn image_info_from_memory(data: &[u8]) -> Result<ImageInfo> {
    info(&data[..data.len().min(HEADER_BYTES as usize)], None)
}

fn info(prefix: &[u8], by_extension: Option<ImageFormat>) -> Result<ImageInfo> {
    let mut reader = reader(Cursor::new(prefix), by_extension)?;
    let format = reader.format().unwrap_or(ImageFormat::Png);
    let file_format = match format {
        ImageFormat::Png => FileFormat::Png,
        ImageFormat::Jpeg => FileFormat::Jpeg,
        ImageFormat::Gif => FileFormat::Gif,
        ImageFormat::Bmp => FileFormat::Bmp,
        ImageFormat::WebP => FileFormat::WebP,
        ImageFormat::Ico => FileFormat::Ico,
        other => {
            return Err(Error::new(
                ErrorKind::Decode,
                format!("{other:?} is not a format this build decodes"),
            ))
        }
    };
    let header = header::sniff(format, prefix);
    // No size limits (the size is the answer), but reading the header allocates within bounds.
    let mut limits = Limits::no_limits();
    limits.max_alloc = Some(limits_in_force().2);
    reader.limits(limits);
    // The decoder's view first (it is what loading uses: alpha after tRNS, the orientation
    // from any EXIF), the header's own when no decoder takes the bytes (too large for it, or
    // truncated after the header).
    let (stored_width, stored_height, has_alpha, orientation) = match reader.into_decoder() {
        Ok(mut decoder) => {
            let (w, h) = decoder.dimensions();
            let alpha = decoder.color_type().has_alpha();
            let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
            (w, h, Some(alpha), orientation)
        }
        Err(e) => match header {
            Some(h) => (
                h.width,
                h.height,
                h.has_alpha,
                h.orientation.unwrap_or(Orientation::NoTransforms),
            ),
            None => return Err(decode_error(e, None)),
        },
    };
    let exif = orientation.to_exif();
    let (width, height) = if exif >= 5 {
        (stored_height, stored_width)
    } else {
        (stored_width, stored_height)
    };
    Ok(ImageInfo {
        format: file_format,
        width,
        height,
        stored_width,
        stored_height,
        has_alpha,
        orientation: exif,
    })
}

/// Converts a freshly decoded pixmap, counting the conversion against the allocation limit.
fn convert_within_limits(pm: Pixmap, format: Format, max_alloc: u64) -> Result<Pixmap> {
    if pm.format() != Some(format) {
        let source = pm.pixels().map_or(0, |p| p.len() as u64);
        check_alloc_within(
            source + output_bytes(pm.width(), pm.height(), format),
            max_alloc,
        )?;
    }
    convert::convert(&pm, format)
}

/// Saves a raster pixmap to `path`, atomically, in the format its extension names: the same as
/// [`super::encode::save`] (kept here for callers of the decoding module).
pub fn save(pm: &Pixmap, path: &Path) -> Result<()> {
    super::encode::save(pm, path)
}

/// Converts a decoded image to a pixmap in its natural format: gray stays 8-bit gray, opaque
/// colour becomes RGB888, anything else RGBA8888.
pub fn from_image(image: DynamicImage) -> Result<Pixmap> {
    from_image_within(image, limits_in_force().2)
}

/// [`from_image`] within an allocation limit of `max_alloc` bytes.
fn from_image_within(image: DynamicImage, max_alloc: u64) -> Result<Pixmap> {
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
    check_alloc_within(decoded + output_bytes(width, height, natural), max_alloc)?;
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

/// Refuses an allocation above `max_alloc`, before it is made.
fn check_alloc_within(bytes: u64, max_alloc: u64) -> Result<()> {
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
