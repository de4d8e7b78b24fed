//! Images in: decoding files and memory into pixmaps with the `image` crate.
//!
//! Decoding is bounded: width, height and the decoder's allocations are limited (by default to
//! 16,384 x 16,384 and 512 MiB), so a decompression bomb or a corrupt file fails with an error
//! instead of a huge allocation or an abort.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageReader, Limits};

use crate::error::{Error, ErrorKind, Result};
use crate::format::Format;
use crate::pixmap::Pixmap;

/// Largest width or height accepted from a decoder.
pub const DEFAULT_MAX_DIMENSION: u32 = 16_384;
/// Largest allocation a decoder may make, in bytes.
pub const DEFAULT_MAX_ALLOC: u64 = 512 * 1024 * 1024;

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(DEFAULT_MAX_DIMENSION);
    limits.max_image_height = Some(DEFAULT_MAX_DIMENSION);
    limits.max_alloc = Some(DEFAULT_MAX_ALLOC);
    limits
}

fn decode_error(e: image::ImageError) -> Error {
    match e {
        image::ImageError::Limits(l) => {
            Error::new(ErrorKind::TooLarge, format!("image rejected: {l}"))
        }
        image::ImageError::IoError(io) => Error::new(ErrorKind::Io, io.to_string()),
        other => Error::new(ErrorKind::Decode, other.to_string()),
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

/// Converts a decoded image to a pixmap in its natural format: gray stays 8-bit gray, opaque
/// colour becomes RGB888, anything else RGBA8888.
pub fn from_image(image: DynamicImage) -> Result<Pixmap> {
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
