//! Pixel format conversion between every raster [`Format`], pixel by pixel.
//!
//! Rules (documented on `PixcacheFormat` and `pixcache_pixmap_convert`), checked against Qt 6's
//! `QImage::convertToFormat`:
//! - exact: channel shuffles between formats that store alpha the same way (straight to straight,
//!   premultiplied to premultiplied, opaque to opaque), and every opaque pixel in any direction;
//! - premultiplying is Qt's `qPremultiply`: `t = c * a; c' = (t + (t >> 8) + 0x80) >> 8`
//!   (round to nearest but for 24 of the 65,536 (c, a) pairs, one lower); unpremultiplying is
//!   Qt's `qUnpremultiply`, round to nearest: `c = min(255, (c' * 255 + a / 2) / a)`, and fully
//!   transparent pixels become 0. Unpremultiplying then premultiplying gives back every valid
//!   premultiplied pixel; the other way loses precision at low alpha;
//! - converting to a format without alpha (RGB888, BGRX8888, GRAY8) drops alpha from the
//!   straight colour, as Qt does (`Format_ARGB32` or `_Premultiplied` to `Format_RGB32`): it is
//!   not composited over black. BGRX8888's unused byte is written 0xFF and never read;
//! - grey is Qt's `qGray`: `(r * 11 + g * 16 + b * 5) / 32`; grey to colour replicates it.

use crate::error::{Error, ErrorKind, Result};
use crate::images::format::{Alpha, Format};
use crate::pixmap::Pixmap;

/// Premultiplies one channel by alpha as Qt's `qPremultiply` does.
pub fn premultiply(c: u8, a: u8) -> u8 {
    let t = u32::from(c) * u32::from(a);
    ((t + (t >> 8) + 0x80) >> 8) as u8
}

/// Undoes [`premultiply`] as Qt's `qUnpremultiply` does (clamped; 0 when alpha is 0).
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

/// Reads one pixel of `format` as R, G, B, A, alpha stored as the format stores it (a
/// premultiplied format's colour stays premultiplied); formats without alpha read 255.
fn read(format: Format, px: &[u8]) -> [u8; 4] {
    match format {
        Format::Rgba8888 | Format::Rgba8888Premultiplied => [px[0], px[1], px[2], px[3]],
        Format::Bgra8888 | Format::Bgra8888Premultiplied => [px[2], px[1], px[0], px[3]],
        Format::Bgrx8888 => [px[2], px[1], px[0], 255],
        Format::Rgb888 => [px[0], px[1], px[2], 255],
        Format::Gray8 => [px[0], px[0], px[0], 255],
    }
}

/// Writes R, G, B, A (alpha already stored as `format` stores it) as one pixel of `format`.
fn write(format: Format, [r, g, b, a]: [u8; 4], out: &mut [u8]) {
    match format {
        Format::Rgba8888 | Format::Rgba8888Premultiplied => out.copy_from_slice(&[r, g, b, a]),
        Format::Bgra8888 | Format::Bgra8888Premultiplied => out.copy_from_slice(&[b, g, r, a]),
        Format::Bgrx8888 => out.copy_from_slice(&[b, g, r, 255]),
        Format::Rgb888 => out.copy_from_slice(&[r, g, b]),
        Format::Gray8 => out[0] = gray(r, g, b),
    }
}

/// One pixel of `from` as `to` stores it.
fn convert_pixel(from: Format, to: Format, px: &[u8], out: &mut [u8]) {
    let [r, g, b, a] = read(from, px);
    let rgba = match (from.alpha(), to.alpha()) {
        (Alpha::Straight, Alpha::Premultiplied) => {
            [premultiply(r, a), premultiply(g, a), premultiply(b, a), a]
        }
        (Alpha::Premultiplied, Alpha::Straight | Alpha::Opaque) => [
            unpremultiply(r, a),
            unpremultiply(g, a),
            unpremultiply(b, a),
            a,
        ],
        // The same storage, or from opaque pixels (alpha 255: straight and premultiplied agree),
        // or straight to opaque (alpha dropped).
        _ => [r, g, b, a],
    };
    write(to, rgba, out);
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
            convert_pixel(
                from,
                to,
                &src_row[x * fb..x * fb + fb],
                &mut dst_row[x * tb..x * tb + tb],
            );
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

/// The pixels of a raster pixmap as tightly packed RGB composited over black, i.e. its
/// premultiplied colour (for encoders of formats without alpha).
pub fn to_rgb_over_black(pm: &Pixmap) -> Result<Vec<u8>> {
    let premultiplied = convert(pm, Format::Rgba8888Premultiplied)?;
    let (width, height) = (pm.width() as usize, pm.height() as usize);
    let mut out = Vec::new();
    out.try_reserve_exact(width * 3 * height)
        .map_err(|_| Error::new(ErrorKind::OutOfMemory, "cannot allocate pixels to encode"))?;
    if let Some(px) = premultiplied.pixels() {
        for row in px.chunks_exact(premultiplied.stride()).take(height) {
            for p in row[..width * 4].chunks_exact(4) {
                out.extend_from_slice(&p[..3]);
            }
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

    /// The (colour, alpha) pairs where Qt 6's `qPremultiply` (and `QImage::convertToFormat` to
    /// `Format_ARGB32_Premultiplied`, on every pixel) gives one less than `round(c * a / 255)`:
    /// derived once from Qt 6.4 by converting all 65,536 pairs, as recorded here.
    const QT_ROUNDS_DOWN: [(u8, u8); 24] = [
        (229, 152),
        (212, 169),
        (241, 173),
        (196, 188),
        (253, 191),
        (232, 194),
        (188, 196),
        (244, 197),
        (236, 208),
        (169, 212),
        (227, 214),
        (251, 223),
        (233, 226),
        (214, 227),
        (152, 229),
        (194, 232),
        (226, 233),
        (208, 236),
        (247, 239),
        (173, 241),
        (197, 244),
        (239, 247),
        (223, 251),
        (191, 253),
    ];

    /// Premultiplying as Qt does, computed another way than [`premultiply`].
    fn model_premultiply(c: u8, a: u8) -> u8 {
        let nearest = (f64::from(c) * f64::from(a) / 255.0 + 0.5).floor() as u8;
        nearest - u8::from(QT_ROUNDS_DOWN.contains(&(c, a)))
    }

    /// Unpremultiplying to nearest, halves up, computed another way than [`unpremultiply`].
    fn model_unpremultiply(c: u8, a: u8) -> u8 {
        if a == 0 {
            return 0;
        }
        (f64::from(c) * 255.0 / f64::from(a) + 0.5)
            .floor()
            .min(255.0) as u8
    }

    #[test]
    fn premultiplying_is_qts() {
        for a in 0..=255u8 {
            for c in 0..=255u8 {
                assert_eq!(premultiply(c, a), model_premultiply(c, a), "c={c} a={a}");
            }
        }
        // A pair Qt rounds down: 229 * 152 / 255 = 136.50196.
        assert_eq!(premultiply(229, 152), 136);
    }

    #[test]
    fn unpremultiplying_inverts_premultiplying() {
        for a in 0..=255u8 {
            for c in 0..=a {
                assert_eq!(
                    unpremultiply(c, a),
                    model_unpremultiply(c, a),
                    "c={c} a={a}"
                );
                // Every valid premultiplied value comes back.
                assert_eq!(premultiply(unpremultiply(c, a), a), c, "c={c} a={a}");
            }
        }
        assert_eq!(unpremultiply(1, 2), 128);
        assert_eq!(unpremultiply(200, 100), 255);
    }

    /// Where each format keeps R, G, B and A in a pixel (`None`: not stored), written out here
    /// rather than taken from `read`/`write`.
    fn layout(f: Format) -> [Option<usize>; 4] {
        match f {
            Format::Rgba8888 | Format::Rgba8888Premultiplied => {
                [Some(0), Some(1), Some(2), Some(3)]
            }
            Format::Bgra8888 | Format::Bgra8888Premultiplied => {
                [Some(2), Some(1), Some(0), Some(3)]
            }
            Format::Bgrx8888 => [Some(2), Some(1), Some(0), None],
            Format::Rgb888 => [Some(0), Some(1), Some(2), None],
            Format::Gray8 => [None, None, None, None],
        }
    }

    fn premultiplied(f: Format) -> bool {
        matches!(
            f,
            Format::Bgra8888Premultiplied | Format::Rgba8888Premultiplied
        )
    }

    /// The straight colour and alpha the model reads from one stored pixel.
    fn model_read(f: Format, px: &[u8]) -> [u8; 4] {
        if f == Format::Gray8 {
            return [px[0], px[0], px[0], 255];
        }
        let l = layout(f);
        let a = l[3].map_or(255, |i| px[i]);
        let mut out = [0, 0, 0, a];
        for k in 0..3 {
            let v = px[l[k].unwrap()];
            out[k] = if premultiplied(f) {
                model_unpremultiply(v, a)
            } else {
                v
            };
        }
        out
    }

    /// What converting one stored pixel of `from` to `to` must give, by the documented rules.
    fn expected(from: Format, to: Format, px: &[u8]) -> Vec<u8> {
        let n = to.bytes_per_pixel() as usize;
        // Exact byte shuffles: the same alpha storage (or both opaque colour formats).
        let same_storage = (premultiplied(from) && premultiplied(to))
            || (from == Format::Gray8) == (to == Format::Gray8)
                && layout(from)[3].is_none()
                && layout(to)[3].is_none();
        let [r, g, b, a] = if same_storage && from != Format::Gray8 {
            let l = layout(from);
            let a = l[3].map_or(255, |i| px[i]);
            [px[l[0].unwrap()], px[l[1].unwrap()], px[l[2].unwrap()], a]
        } else {
            model_read(from, px)
        };
        if to == Format::Gray8 {
            let y = (u32::from(r) * 11 + u32::from(g) * 16 + u32::from(b) * 5) / 32;
            return vec![y as u8];
        }
        let l = layout(to);
        let mut out = vec![0xEE; n];
        let to_premultiplied = premultiplied(to) && !premultiplied(from);
        for (k, v) in [r, g, b].into_iter().enumerate() {
            out[l[k].unwrap()] = if to_premultiplied {
                model_premultiply(v, a)
            } else {
                v
            };
        }
        if n == 4 {
            out[3] = if l[3].is_some() { a } else { 0xFF };
        }
        out
    }

    /// Source pixels of `f`: every combination of colours 0, 1, 254, 255 with alphas 0, 1, 127,
    /// 255 that `f` can hold (premultiplied colours clamped to alpha; BGRX's X byte not 0xFF).
    fn sources(f: Format) -> Vec<Vec<u8>> {
        const COLOURS: [u8; 4] = [0, 1, 254, 255];
        let alphas: &[u8] = if f.has_alpha() {
            &[0, 1, 127, 255]
        } else {
            &[255]
        };
        let mut out = Vec::new();
        if f == Format::Gray8 {
            return [0u8, 1, 127, 254, 255].iter().map(|&v| vec![v]).collect();
        }
        for &a in alphas {
            for r in COLOURS {
                for g in COLOURS {
                    for b in COLOURS {
                        let c = |v: u8| if premultiplied(f) { v.min(a) } else { v };
                        let l = layout(f);
                        let mut px = vec![0u8; f.bytes_per_pixel() as usize];
                        px[l[0].unwrap()] = c(r);
                        px[l[1].unwrap()] = c(g);
                        px[l[2].unwrap()] = c(b);
                        match l[3] {
                            Some(i) => px[i] = a,
                            None if px.len() == 4 => px[3] = r ^ 0x5A,
                            None => {}
                        }
                        out.push(px);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn converts_between_every_pair_by_the_rules() {
        for from in Format::ALL {
            let pixels = sources(from);
            let width = 5;
            let height = pixels.len().div_ceil(width);
            let mut src = Pixmap::new(width as u32, height as u32, from).unwrap();
            let stride = src.stride();
            let bpp = from.bytes_per_pixel() as usize;
            let bytes = src.pixels_mut().unwrap().unwrap();
            for (i, px) in pixels.iter().enumerate() {
                let at = (i / width) * stride + (i % width) * bpp;
                bytes[at..at + bpp].copy_from_slice(px);
            }
            for to in Format::ALL {
                let out = convert(&src, to).unwrap();
                assert_eq!(
                    (out.width(), out.height(), out.format()),
                    (width as u32, height as u32, Some(to))
                );
                let (ostride, obpp) = (out.stride(), to.bytes_per_pixel() as usize);
                assert_eq!(ostride, (width * obpp).next_multiple_of(4));
                let got = out.pixels().unwrap();
                for (i, px) in pixels.iter().enumerate() {
                    let at = (i / width) * ostride + (i % width) * obpp;
                    let want = if from == to {
                        px.clone()
                    } else {
                        expected(from, to, px)
                    };
                    assert_eq!(
                        &got[at..at + obpp],
                        want.as_slice(),
                        "{from:?} {px:?} to {to:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn chosen_pixels_convert_to_known_bytes() {
        // Straight (R, G, B, A): opaque red, half green, transparent with colour, alpha 1.
        let mut src = Pixmap::new(4, 1, Format::Rgba8888).unwrap();
        src.pixels_mut().unwrap().unwrap().copy_from_slice(&[
            255, 0, 0, 255, 0, 255, 0, 128, 10, 20, 30, 0, 254, 1, 255, 1,
        ]);
        let bytes = |to| convert(&src, to).unwrap().pixels().unwrap().to_vec();
        assert_eq!(
            bytes(Format::Bgra8888),
            [0, 0, 255, 255, 0, 255, 0, 128, 30, 20, 10, 0, 255, 1, 254, 1]
        );
        assert_eq!(
            bytes(Format::Bgra8888Premultiplied),
            [0, 0, 255, 255, 0, 128, 0, 128, 0, 0, 0, 0, 1, 0, 1, 1]
        );
        assert_eq!(
            bytes(Format::Rgba8888Premultiplied),
            [255, 0, 0, 255, 0, 128, 0, 128, 0, 0, 0, 0, 1, 0, 1, 1]
        );
        // Alpha dropped, colour kept (as Qt's ARGB32 to RGB32).
        assert_eq!(
            bytes(Format::Bgrx8888),
            [0, 0, 255, 255, 0, 255, 0, 255, 30, 20, 10, 255, 255, 1, 254, 255]
        );
        assert_eq!(
            bytes(Format::Rgb888),
            [255, 0, 0, 0, 255, 0, 10, 20, 30, 254, 1, 255]
        );
        assert_eq!(bytes(Format::Gray8), [87, 127, 18, 127]);
        // Premultiplied to straight: alpha 0 gives 0, 0, 0, 0; alpha 1 gives 0 or 255.
        let pm = convert(&src, Format::Rgba8888Premultiplied).unwrap();
        let back = convert(&pm, Format::Bgra8888).unwrap();
        assert_eq!(
            back.pixels().unwrap(),
            [0, 0, 255, 255, 0, 255, 0, 128, 0, 0, 0, 0, 255, 0, 255, 1]
        );
        // Premultiplied to premultiplied only reorders bytes, even bytes no straight colour
        // would give (a colour above its alpha).
        let mut odd = Pixmap::new(1, 1, Format::Bgra8888Premultiplied).unwrap();
        odd.pixels_mut()
            .unwrap()
            .unwrap()
            .copy_from_slice(&[9, 200, 3, 100]);
        let shuffled = convert(&odd, Format::Rgba8888Premultiplied).unwrap();
        assert_eq!(shuffled.pixels().unwrap(), [3, 200, 9, 100]);
        // BGRX's X byte is ignored on reading.
        let mut x = Pixmap::new(1, 1, Format::Bgrx8888).unwrap();
        x.pixels_mut()
            .unwrap()
            .unwrap()
            .copy_from_slice(&[1, 2, 3, 0]);
        let rgba = convert(&x, Format::Rgba8888).unwrap();
        assert_eq!(rgba.pixels().unwrap(), [3, 2, 1, 255]);
    }

    #[test]
    fn rgb_over_black_is_the_premultiplied_colour() {
        let mut src = Pixmap::new(2, 1, Format::Bgra8888).unwrap();
        src.pixels_mut()
            .unwrap()
            .unwrap()
            .copy_from_slice(&[200, 100, 50, 128, 9, 9, 9, 0]);
        assert_eq!(to_rgb_over_black(&src).unwrap(), [25, 50, 100, 0, 0, 0]);
    }
}
