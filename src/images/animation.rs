//! Animated images: the frames of an animated GIF, APNG or animated WebP, as the `image` crate's
//! `AnimationDecoder` composes them (every frame a full-canvas straight-RGBA image, earlier
//! frames' disposal and blending applied).
//!
//! Frames are streamed: to count them or reach frame n, the frames before it are decoded one
//! after another and dropped, so memory stays a few canvases whatever the frame count. Before
//! decoding starts, [`CANVASES`] canvases of `width x height x 4` bytes must fit within the
//! process-wide allocation limit (`decode::limits_in_force`), and the decoders get the width,
//! height and allocation limits too. Other images (a still PNG, WebP or any JPEG, BMP, ICO) have
//! one frame, with delay 0.

use std::path::Path;

use image::codecs::gif::GifDecoder;
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::{AnimationDecoder, DynamicImage, Frames, ImageDecoder, ImageFormat, ImageReader};

use crate::error::{Error, ErrorKind, Result};
use crate::images::decode;
use crate::images::format::Format;
use crate::pixmap::Pixmap;

/// How many full RGBA canvases an animation decoder may hold at once (the canvas being
/// composed, the one kept for disposal, the frame handed out, and the decoded sub-frame and its
/// RGBA form), counted against the allocation limit before decoding.
pub const CANVASES: u64 = 5;

/// The `image` crate's limits for the decoding limits in force.
pub(crate) fn limits() -> image::Limits {
    let (w, h, alloc) = decode::limits_in_force();
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(alloc);
    limits
}

pub(crate) fn decode_error(path: &Path, e: image::ImageError) -> Error {
    let (kind, text) = match e {
        image::ImageError::Limits(l) => (ErrorKind::TooLarge, format!("image rejected: {l}")),
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            (ErrorKind::Decode, format!("truncated image data: {io}"))
        }
        image::ImageError::IoError(io) => (ErrorKind::Io, io.to_string()),
        other => (ErrorKind::Decode, other.to_string()),
    };
    Error::new(kind, format!("{}: {text}", path.display()))
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("{}: {e}", path.display()))
}

/// Refuses a canvas whose [`CANVASES`] copies exceed the allocation limit.
fn check_canvas(path: &Path, (width, height): (u32, u32)) -> Result<()> {
    let (_, _, max_alloc) = decode::limits_in_force();
    let bytes = u64::from(width) * u64::from(height) * 4 * CANVASES;
    if bytes > max_alloc {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "{}: decoding a {width}x{height} animation needs {bytes} bytes, above the limit \
                 of {max_alloc} bytes",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// The frames of the animation at `path`, or `None` when the file is not an animation.
fn animation(path: &Path) -> Result<Option<Frames<'static>>> {
    let reader = ImageReader::open(path)
        .map_err(|e| io_error(path, e))?
        .with_guessed_format()
        .map_err(|e| io_error(path, e))?;
    let format = reader.format();
    let input = reader.into_inner();
    let err = |e| decode_error(path, e);
    let frames = match format {
        Some(ImageFormat::Gif) => {
            let mut d = GifDecoder::new(input).map_err(err)?;
            d.set_limits(limits()).map_err(err)?;
            check_canvas(path, d.dimensions())?;
            d.into_frames()
        }
        Some(ImageFormat::Png) => {
            let d = PngDecoder::with_limits(input, limits()).map_err(err)?;
            if !d.is_apng().map_err(err)? {
                return Ok(None);
            }
            check_canvas(path, d.dimensions())?;
            d.apng().map_err(err)?.into_frames()
        }
        Some(ImageFormat::WebP) => {
            let mut d = WebPDecoder::new(input).map_err(err)?;
            if !d.has_animation() {
                return Ok(None);
            }
            d.set_limits(limits()).map_err(err)?;
            check_canvas(path, d.dimensions())?;
            d.into_frames()
        }
        _ => return Ok(None),
    };
    Ok(Some(frames))
}

/// A frame's delay in whole milliseconds (rounded to nearest, saturating).
fn delay_ms(frame: &image::Frame) -> u32 {
    let (num, den) = frame.delay().numer_denom_ms();
    if den == 0 {
        return 0;
    }
    let ms = (u64::from(num) + u64::from(den) / 2) / u64::from(den);
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// Calls `each(index, delay_ms)` for every frame of the image at `path`, in order, and returns
/// the frame count. A still image has one frame of delay 0.
pub fn frame_delays(path: &Path, mut each: impl FnMut(usize, u32)) -> Result<usize> {
    let Some(frames) = animation(path)? else {
        // Still images: checked to be a decodable image (its header), not decoded.
        let reader = ImageReader::open(path)
            .map_err(|e| io_error(path, e))?
            .with_guessed_format()
            .map_err(|e| io_error(path, e))?;
        if reader.format().is_none() {
            return Err(Error::new(
                ErrorKind::Decode,
                format!("{}: not an image format this build decodes", path.display()),
            ));
        }
        reader
            .into_dimensions()
            .map_err(|e| decode_error(path, e))?;
        each(0, 0);
        return Ok(1);
    };
    let mut count = 0;
    for frame in frames {
        let frame = frame.map_err(|e| decode_error(path, e))?;
        each(count, delay_ms(&frame));
        count += 1;
    }
    if count == 0 {
        // A GIF with a screen but no image block: nothing to show (and nothing `load` loads).
        return Err(Error::new(
            ErrorKind::Decode,
            format!("{}: the animation has no frames", path.display()),
        ));
    }
    Ok(count)
}

/// Frame `n` (from 0) of the image at `path`: for an animation, the full canvas as composed
/// after frame n, as RGBA8888; for a still image, frame 0 is the image in its natural format.
/// `n` past the last frame is [`ErrorKind::InvalidArgument`].
pub fn load_frame(path: &Path, n: usize) -> Result<Pixmap> {
    let out_of_range = |count: usize| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{}: frame {n} does not exist: the image has {count} frame{}",
                path.display(),
                if count == 1 { "" } else { "s" }
            ),
        )
    };
    let Some(frames) = animation(path)? else {
        if n > 0 {
            return Err(out_of_range(1));
        }
        return decode::load(path);
    };
    let mut count = 0;
    for frame in frames {
        let frame = frame.map_err(|e| decode_error(path, e))?;
        if count == n {
            return decode::from_image(DynamicImage::ImageRgba8(frame.into_buffer()));
        }
        count += 1;
    }
    Err(out_of_range(count))
}

/// `pm` converted to `format` (`None`: as it is), the conversion's buffers (the source and the
/// output) counted against the allocation limit.
pub fn into_format(pm: Pixmap, format: Option<Format>) -> Result<Pixmap> {
    let Some(format) = format else {
        return Ok(pm);
    };
    if pm.format() == Some(format) {
        return Ok(pm);
    }
    let (_, _, max_alloc) = decode::limits_in_force();
    let source = pm.pixels().map_or(0, |p| p.len() as u64);
    let row = u64::from(pm.width()) * u64::from(format.bytes_per_pixel());
    let bytes = source + ((row + 3) & !3) * u64::from(pm.height());
    if bytes > max_alloc {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("converting needs {bytes} bytes, above the limit of {max_alloc} bytes"),
        ));
    }
    crate::images::convert::convert(&pm, format)
}
