//! Pixel format conversion between every raster [`Format`], through straight 8-bit RGBA.
//!
//! Rules (documented on `pixcache_pixmap_convert`):
//! - premultiplying rounds to nearest: `c' = (c * a + 127) / 255`; unpremultiplying inverts it,
//!   clamped: `c = min(255, (c' * 255 + a / 2) / a)`, and fully transparent pixels become 0;
//! - converting to a format without alpha (RGB888, GRAY8) composites over black, i.e. keeps the
//!   premultiplied colour, as Qt does for `Format_RGB32`;
//! - grey is Qt's `qGray`: `(r * 11 + g * 16 + b * 5) / 32`; grey to colour replicates it.

use crate::error::{Error, ErrorKind, Result};
use crate::images::format::Format;
use crate::pixmap::Pixmap;

/// Premultiplies one channel by alpha, rounding to nearest.
pub fn premultiply(c: u8, a: u8) -> u8 {
    ((u32::from(c) * u32::from(a) + 127) / 255) as u8
}

/// Undoes [`premultiply`] (clamped; 0 when alpha is 0).
pub fn unpremultiply(c: u8, a: u8) -> u8 {
    if a == 0 {
        return 0;
    }
    ((u32::from(c) * 255 + u32::from(a) / 2) / u32::from(a)).min(255) as u8
}

/// Qt's `qGray`.
pub fn gray(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 11 + u32::from(g) * 16 + u32::from(b) * 5) / 32) as u8
}

/// Reads one pixel of `format` as straight RGBA.
fn read(format: Format, px: &[u8]) -> [u8; 4] {
    match format {
        Format::Rgba8888 => [px[0], px[1], px[2], px[3]],
        Format::Bgra8888Premultiplied => {
            let a = px[3];
            [
                unpremultiply(px[2], a),
                unpremultiply(px[1], a),
                unpremultiply(px[0], a),
                a,
            ]
        }
        Format::Rgb888 => [px[0], px[1], px[2], 255],
        Format::Gray8 => [px[0], px[0], px[0], 255],
    }
}

/// Writes straight RGBA as one pixel of `format`.
fn write(format: Format, [r, g, b, a]: [u8; 4], out: &mut [u8]) {
    match format {
        Format::Rgba8888 => out.copy_from_slice(&[r, g, b, a]),
        Format::Bgra8888Premultiplied => {
            out.copy_from_slice(&[premultiply(b, a), premultiply(g, a), premultiply(r, a), a])
        }
        Format::Rgb888 => {
            out.copy_from_slice(&[premultiply(r, a), premultiply(g, a), premultiply(b, a)])
        }
        Format::Gray8 => out[0] = gray(premultiply(r, a), premultiply(g, a), premultiply(b, a)),
    }
}

/// A new raster pixmap holding `pm` converted to `to`. The null pixmap converts to itself;
/// foreign pixmaps have no pixels to convert ([`ErrorKind::Unsupported`]).
pub fn convert(pm: &Pixmap, to: Format) -> Result<Pixmap> {
    if pm.is_null() {
        return Ok(Pixmap::null());
    }
    let (Some(from), Some(src)) = (pm.format(), pm.pixels()) else {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "a foreign pixmap's pixels belong to its toolkit; pixcache cannot convert them",
        ));
    };
    if from == to {
        return Ok(pm.clone());
    }
    let (width, height) = (pm.width() as usize, pm.height() as usize);
    let mut out = Pixmap::new(pm.width(), pm.height(), to)?;
    let out_stride = out.stride();
    let Some(dst) = out.pixels_mut()? else {
        return Ok(out);
    };
    let (fb, tb) = (
        from.bytes_per_pixel() as usize,
        to.bytes_per_pixel() as usize,
    );
    for (src_row, dst_row) in src
        .chunks_exact(pm.stride())
        .zip(dst.chunks_exact_mut(out_stride))
        .take(height)
    {
        for x in 0..width {
            let rgba = read(from, &src_row[x * fb..x * fb + fb]);
            write(to, rgba, &mut dst_row[x * tb..x * tb + tb]);
        }
    }
    Ok(out)
}

/// The pixels of a raster pixmap as tightly packed straight RGBA (for encoders).
pub fn to_rgba(pm: &Pixmap) -> Result<Vec<u8>> {
    let rgba = convert(pm, Format::Rgba8888)?;
    let row = pm.width() as usize * 4;
    let mut out = Vec::new();
    out.try_reserve_exact(row * pm.height() as usize)
        .map_err(|_| Error::new(ErrorKind::OutOfMemory, "cannot allocate pixels to encode"))?;
    if let Some(px) = rgba.pixels() {
        for r in px.chunks_exact(rgba.stride()).take(pm.height() as usize) {
            out.extend_from_slice(&r[..row]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn premultiply_round_trips_where_it_can() {
        for a in [1u8, 7, 128, 200, 255] {
            for c in 0..=255u8 {
                let p = premultiply(c, a);
                assert!(p <= a);
                // Unpremultiplying recovers the colour to within the precision alpha leaves.
                let back = unpremultiply(p, a);
                let err = (i32::from(back) - i32::from(c)).abs();
                assert!(err <= (255 / i32::from(a) + 1), "c={c} a={a} back={back}");
            }
        }
        assert_eq!(premultiply(255, 255), 255);
        assert_eq!(unpremultiply(0, 0), 0);
        assert_eq!(premultiply(200, 128), 100);
    }

    #[test]
    fn converts_between_every_pair() {
        let mut src = Pixmap::new(3, 2, Format::Rgba8888).unwrap();
        let px = src.pixels_mut().unwrap().unwrap();
        px[..12].copy_from_slice(&[255, 0, 0, 255, 0, 255, 0, 128, 10, 20, 30, 0]);
        for &a in &Format::ALL {
            for &b in &Format::ALL {
                let there = convert(&src, a).unwrap();
                let back = convert(&there, b).unwrap();
                assert_eq!(
                    (back.width(), back.height(), back.format()),
                    (3, 2, Some(b))
                );
            }
        }
        let bgra = convert(&src, Format::Bgra8888Premultiplied).unwrap();
        assert_eq!(
            &bgra.pixels().unwrap()[..12],
            &[0, 0, 255, 255, 0, 128, 0, 128, 0, 0, 0, 0]
        );
        let rgb = convert(&src, Format::Rgb888).unwrap();
        assert_eq!(
            &rgb.pixels().unwrap()[..9],
            &[255, 0, 0, 0, 128, 0, 0, 0, 0]
        );
        let g = convert(&src, Format::Gray8).unwrap();
        assert_eq!(g.pixels().unwrap()[0], gray(255, 0, 0));
        let straight = convert(&bgra, Format::Rgba8888).unwrap();
        assert_eq!(
            &straight.pixels().unwrap()[..8],
            &[255, 0, 0, 255, 0, 255, 0, 128]
        );
    }
}
