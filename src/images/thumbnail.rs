//! Thumbnails: an image file decoded, then scaled down to fit a box, keeping its aspect ratio.
//!
//! The scaling is the `image` crate's separable resampling with a Catmull-Rom (bicubic) filter
//! by default ([`Filter`]), done on premultiplied colour when the image has alpha (so
//! transparent pixels' colours do not bleed into their neighbours). Images already inside the
//! box are never upscaled.
//!
//! JPEG is decoded at full size: the `image` crate's JPEG decoder (zune-jpeg 0.5) has no
//! reduced-size (DCT-scaled) decoding, so a 4000x3000 JPEG is decoded whole before it is
//! scaled. The decoding limits apply as for `decode::load`, and the scaling's own buffers (a
//! float intermediate of `width x new height`, the output) count against the allocation limit.

use std::path::Path;

use image::imageops::FilterType;
use image::DynamicImage;

use crate::error::{Error, ErrorKind, Result};
use crate::images::{convert, decode};
use crate::pixmap::Pixmap;

/// A resampling filter for [`load_scaled`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Catmull-Rom bicubic: sharp, no visible ringing; the default.
    CatmullRom,
    /// Lanczos with 3 lobes: a little sharper, slower.
    Lanczos3,
    /// Linear (triangle): soft, fastest of the three.
    Triangle,
}

impl Filter {
    fn image_filter(self) -> FilterType {
        match self {
            Filter::CatmullRom => FilterType::CatmullRom,
            Filter::Lanczos3 => FilterType::Lanczos3,
            Filter::Triangle => FilterType::Triangle,
        }
    }
}

/// The size `width x height` gets to fit within `max_w x max_h`, aspect ratio kept (rounded to
/// nearest, at least 1 pixel), never larger than it is. A 0 bound is no bound.
pub fn fitted_size(width: u32, height: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    if width == 0 || height == 0 {
        return (width, height); // nothing to scale (and no aspect ratio to keep)
    }
    let max_w = if max_w == 0 { width } else { max_w };
    let max_h = if max_h == 0 { height } else { max_h };
    if width <= max_w && height <= max_h {
        return (width, height);
    }
    let (w, h) = (u64::from(width), u64::from(height));
    // Whichever side binds: compare max_w / w with max_h / h without floating point.
    if u64::from(max_w) * h <= u64::from(max_h) * w {
        let nh = ((h * u64::from(max_w) + w / 2) / w).clamp(1, u64::from(max_h));
        (max_w, nh as u32)
    } else {
        let nw = ((w * u64::from(max_h) + h / 2) / h).clamp(1, u64::from(max_w));
        (nw as u32, max_h)
    }
}

fn check_alloc(bytes: u64) -> Result<()> {
    let (_, _, max_alloc) = decode::limits_in_force();
    if bytes > max_alloc {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("scaling needs {bytes} bytes, above the limit of {max_alloc} bytes"),
        ));
    }
    Ok(())
}

/// Scales a decoded image to `(nw, nh)` with `filter`, in premultiplied colour if it has alpha.
pub fn scale(image: DynamicImage, nw: u32, nh: u32, filter: Filter) -> Result<DynamicImage> {
    if (image.width(), image.height()) == (nw, nh) {
        return Ok(image);
    }
    let channels = u64::from(image.color().channel_count());
    let decoded = image.as_bytes().len() as u64;
    // The vertical pass's float intermediate, then the output.
    let intermediate = u64::from(image.width()) * u64::from(nh) * channels * 4;
    check_alloc(decoded + intermediate + u64::from(nw) * u64::from(nh) * channels)?;
    let filter = filter.image_filter();
    Ok(match image {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => {
            image.resize_exact(nw, nh, filter)
        }
        other if !other.color().has_alpha() => {
            if other.color().has_color() {
                DynamicImage::ImageRgb8(other.into_rgb8()).resize_exact(nw, nh, filter)
            } else {
                DynamicImage::ImageLuma8(other.into_luma8()).resize_exact(nw, nh, filter)
            }
        }
        other => {
            let mut rgba = other.into_rgba8();
            for p in rgba.pixels_mut() {
                let a = p.0[3];
                for c in &mut p.0[..3] {
                    *c = convert::premultiply(*c, a);
                }
            }
            let mut out = image::imageops::resize(&rgba, nw, nh, filter);
            for p in out.pixels_mut() {
                let a = p.0[3];
                for c in &mut p.0[..3] {
                    // The filter's negative lobes can leave a colour above its alpha.
                    *c = convert::unpremultiply((*c).min(a), a);
                }
            }
            DynamicImage::ImageRgba8(out)
        }
    })
}

/// Decodes the image file at `path` and scales it down to fit within `max_w x max_h` (see
/// [`fitted_size`]) with `filter`; the pixmap is in the image's natural format (as
/// `decode::load`). A bound of 0 leaves that side unbounded.
pub fn load_scaled(path: &Path, max_w: u32, max_h: u32, filter: Filter) -> Result<Pixmap> {
    // As `decode::load` decodes: the header checked against the limits first, the EXIF
    // orientation applied (the box fits the image as it is shown).
    let image = decode::load_image_with(path, &decode::LoadOptions::in_force())?;
    let (nw, nh) = fitted_size(image.width(), image.height(), max_w, max_h);
    decode::from_image(scale(image, nw, nh, filter)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_keeping_the_aspect_ratio_and_never_upscales() {
        assert_eq!(fitted_size(4000, 3000, 256, 256), (256, 192));
        assert_eq!(fitted_size(3000, 4000, 256, 256), (192, 256));
        assert_eq!(fitted_size(100, 50, 256, 256), (100, 50));
        assert_eq!(fitted_size(1000, 1, 10, 10), (10, 1));
        assert_eq!(fitted_size(1, 1000, 10, 10), (1, 10));
        assert_eq!(fitted_size(300, 200, 150, 150), (150, 100));
        assert_eq!(fitted_size(300, 200, 300, 100), (150, 100));
        assert_eq!(fitted_size(u32::MAX, u32::MAX, 7, 9), (7, 7));
        // Degenerate sizes (a header may say anything): nothing to scale, no panic.
        assert_eq!(fitted_size(264, 0, 2, 0), (264, 0));
        assert_eq!(fitted_size(0, 5, 0, 2), (0, 5));
        assert_eq!(fitted_size(264, 1, 2, 0), (2, 1));
    }

    #[test]
    fn transparent_neighbours_do_not_bleed() {
        // Left half opaque red, right half fully transparent *green*: straight-alpha scaling
        // would tint the edge green; premultiplied scaling keeps it red.
        let img = image::RgbaImage::from_fn(64, 8, |x, _| {
            if x < 32 {
                image::Rgba([255, 0, 0, 255])
            } else {
                image::Rgba([0, 255, 0, 0])
            }
        });
        let out = scale(DynamicImage::ImageRgba8(img), 8, 1, Filter::CatmullRom)
            .unwrap()
            .into_rgba8();
        for p in out.pixels().filter(|p| p.0[3] > 0) {
            assert!(p.0[1] == 0 && p.0[0] > 200, "{p:?}");
        }
    }
}
