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
    if bytes <= max_alloc {
        // The decoders allocate their canvases infallibly: ask the allocator first.
        return decode::probe_alloc(bytes);
    }
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

/// How many canvas pixels counting or reaching frames may compose in all (each frame is composed
/// on the whole canvas, a few ns a pixel): beyond it, `TOO_LARGE`. A tiny file can hold 100,000
/// one-pixel frames on a 4000x4000 screen, which would take over an hour to compose; 2^30 pixels
/// is a few seconds, and 4,000 frames of 512x512.
pub const COMPOSE_BUDGET_PIXELS: u64 = 1 << 30;

/// The frames of an animation, stopping with `TOO_LARGE` once composing them would exceed
/// [`COMPOSE_BUDGET_PIXELS`].
struct Budgeted<'p> {
    frames: Frames<'static>,
    canvas: u64,
    composed: u64,
    budget: u64,
    path: &'p Path,
}

impl Iterator for Budgeted<'_> {
    type Item = Result<image::Frame>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.composed > self.budget {
            return None; // spent: the error was the last item
        }
        // Checked after each frame is composed: the work past the budget is one canvas at most.
        let frame = self.frames.next()?;
        self.composed = self.composed.saturating_add(self.canvas);
        if self.composed > self.budget {
            return Some(Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "{}: the animation has more frames than pixcache composes ({} canvas pixels \
                     in all)",
                    self.path.display(),
                    self.budget
                ),
            )));
        }
        Some(frame.map_err(|e| decode_error(self.path, e)))
    }
}

/// The frames of the animation at `path` (composing them bounded by
/// [`COMPOSE_BUDGET_PIXELS`]), or `None` when the file is not an animation.
fn animation(path: &Path) -> Result<Option<Budgeted<'_>>> {
    animation_within(path, COMPOSE_BUDGET_PIXELS)
}

/// [`animation`] with a composing budget of `budget` canvas pixels.
fn animation_within(path: &Path, budget: u64) -> Result<Option<Budgeted<'_>>> {
    let Some((frames, (w, h))) = animation_frames(path)? else {
        return Ok(None);
    };
    Ok(Some(Budgeted {
        frames,
        canvas: u64::from(w) * u64::from(h),
        composed: 0,
        budget,
        path,
    }))
}

/// The frames of the animation at `path` and its canvas size, or `None` when the file is not
/// an animation.
fn animation_frames(path: &Path) -> Result<Option<(Frames<'static>, (u32, u32))>> {
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
            let size = d.dimensions();
            check_canvas(path, size)?;
            (d.into_frames(), size)
        }
        Some(ImageFormat::Png) => {
            let d = PngDecoder::with_limits(input, limits()).map_err(err)?;
            if !d.is_apng().map_err(err)? {
                return Ok(None);
            }
            let size = d.dimensions();
            check_canvas(path, size)?;
            (d.apng().map_err(err)?.into_frames(), size)
        }
        Some(ImageFormat::WebP) => {
            let mut d = WebPDecoder::new(input).map_err(err)?;
            if !d.has_animation() {
                return Ok(None);
            }
            d.set_limits(limits()).map_err(err)?;
            let size = d.dimensions();
            check_canvas(path, size)?;
            (d.into_frames(), size)
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
        let frame = frame?;
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
        let frame = frame?;
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

#[cfg(test)]
mod budget_tests {
    use super::*;

    /// Composing stops with `TOO_LARGE` once the frames composed so far exceed the budget
    /// (here 100 canvas pixels: an 8x8 canvas, the second frame).
    #[test]
    fn composing_is_bounded() {
        use image::codecs::gif::GifEncoder;
        use image::{Delay, Frame, RgbaImage};
        let dir = std::env::temp_dir().join(format!("pixcache-budget-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("three.gif");
        {
            let file = std::fs::File::create(&path).unwrap();
            let mut enc = GifEncoder::new(file);
            for i in 0..3u8 {
                let img = RgbaImage::from_pixel(8, 8, image::Rgba([i * 80, 0, 0, 255]));
                enc.encode_frame(Frame::from_parts(
                    img,
                    0,
                    0,
                    Delay::from_numer_denom_ms(10, 1),
                ))
                .unwrap();
            }
        }
        let frames: Vec<_> = animation_within(&path, 100).unwrap().unwrap().collect();
        assert!(frames[0].is_ok());
        assert!(matches!(&frames[1], Err(e) if e.kind() == ErrorKind::TooLarge));
        assert_eq!(frames.len(), 2, "nothing after the budget is spent");
        let all: Vec<_> = animation_within(&path, 192).unwrap().unwrap().collect();
        assert!(all.len() == 3 && all.iter().all(Result::is_ok));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
