//! What an image file's header says, read from its first bytes without a decoder: the format,
//! the stored width and height, whether it has alpha and its EXIF orientation when the header
//! tells. Used before decoding, to refuse a size over the limits (or over a decoder's own cap)
//! with the real dimensions in the message, and by `image_info`, which must answer for files no
//! decoder would take (beyond the limits, truncated after the header).
//!
//! Every read is bounds-checked: a short or corrupt header gives `None`, never a panic.

use image::metadata::Orientation;
use image::ImageFormat;

/// The BMP decoder refuses a width or (bottom-up) height above this with a decoding error of its
/// own (`image`'s `codecs/bmp/decoder.rs`, `MAX_WIDTH_HEIGHT`).
pub(crate) const BMP_DECODER_CAP: u32 = 0xFFFF;

/// What a header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The container's format (an ICO, even when it holds a PNG).
    pub format: ImageFormat,
    /// As stored, before any EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// `None` when the header does not settle it.
    pub has_alpha: Option<bool>,
    /// `None` when the bytes read hold no orientation (or the format has none).
    pub orientation: Option<Orientation>,
    /// The decoder `image` uses for this format refuses this size on its own (as a decoding
    /// error), whatever the limits: the BMP decoder's 65,535 cap.
    pub over_decoder_cap: bool,
}

/// The header of `bytes`, read as `format` (the format the decoder will use).
pub(crate) fn sniff(format: ImageFormat, bytes: &[u8]) -> Option<Header> {
    match format {
        ImageFormat::Png => png(bytes),
        ImageFormat::Gif => gif(bytes),
        ImageFormat::Bmp => bmp(bytes.get(14..)?, false).filter(|_| bytes.starts_with(b"BM")),
        ImageFormat::Ico => ico(bytes),
        ImageFormat::Jpeg => jpeg(bytes),
        ImageFormat::WebP => webp(bytes),
        _ => None,
    }
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u16_be(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u24_le(b: &[u8], at: usize) -> Option<u32> {
    let v = b.get(at..at + 3)?;
    Some(u32::from(v[0]) | u32::from(v[1]) << 8 | u32::from(v[2]) << 16)
}
fn i32_le(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// PNG: the IHDR chunk (width, height, colour type), then the chunks before the image data as
/// far as `bytes` goes: `tRNS` (alpha) and `eXIf` (orientation).
fn png(b: &[u8]) -> Option<Header> {
    if !b.starts_with(&PNG_SIGNATURE) || b.get(12..16)? != b"IHDR" {
        return None;
    }
    let (width, height, colour) = (u32_be(b, 16)?, u32_be(b, 20)?, *b.get(25)?);
    let mut has_alpha = match colour {
        4 | 6 => Some(true),
        _ => None,
    };
    let mut orientation = None;
    // Walk the chunks after IHDR (8 + 4 + 4 + 13 + 4 = 33) until the image data.
    let mut at = 33usize;
    while let (Some(len), Some(kind)) = (u32_be(b, at), b.get(at + 4..at + 8)) {
        let data = at
            .checked_add(8)
            .and_then(|start| Some(start..start.checked_add(len as usize)?));
        match kind {
            b"IDAT" => {
                has_alpha.get_or_insert(false);
                break;
            }
            b"tRNS" => has_alpha = Some(true),
            b"eXIf" => {
                orientation = data
                    .and_then(|d| b.get(d))
                    .and_then(Orientation::from_exif_chunk)
            }
            _ => {}
        }
        match (len as usize)
            .checked_add(12)
            .and_then(|n| at.checked_add(n))
        {
            Some(next) => at = next,
            None => break,
        }
    }
    Some(Header {
        format: ImageFormat::Png,
        width,
        height,
        has_alpha,
        orientation,
        over_decoder_cap: false,
    })
}

/// GIF: the logical screen, which is the size `image` decodes to.
fn gif(b: &[u8]) -> Option<Header> {
    if !(b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a")) {
        return None;
    }
    Some(Header {
        format: ImageFormat::Gif,
        width: u32::from(u16_le(b, 6)?),
        height: u32::from(u16_le(b, 8)?),
        // `image` decodes every GIF to RGBA.
        has_alpha: Some(true),
        orientation: None,
        over_decoder_cap: false,
    })
}

/// A device-independent bitmap header (a BMP file after its 14-byte file header, or an ICO
/// entry): BITMAPCOREHEADER (12 bytes: 16-bit width and height) or BITMAPINFOHEADER and its
/// successors (signed 32-bit width and height; a negative height is a top-down bitmap). In an
/// ICO the height counts the AND mask too: the image is half of it.
fn bmp(dib: &[u8], in_ico: bool) -> Option<Header> {
    let size = u32_le(dib, 0)?;
    let (width, raw_height, bpp) = if size == 12 {
        (
            i64::from(u16_le(dib, 4)?),
            i64::from(u16_le(dib, 6)?),
            u16_le(dib, 10)?,
        )
    } else if size >= 16 {
        (
            i64::from(i32_le(dib, 4)?),
            i64::from(i32_le(dib, 8)?),
            u16_le(dib, 14)?,
        )
    } else {
        return None;
    };
    if width <= 0 || raw_height == 0 {
        return None; // the decoder's own error (negative width) says it better
    }
    let height = if in_ico {
        raw_height.unsigned_abs() / 2
    } else {
        raw_height.unsigned_abs()
    };
    Some(Header {
        format: ImageFormat::Bmp,
        width: u32::try_from(width).ok()?,
        height: u32::try_from(height).ok()?,
        has_alpha: if in_ico || bpp == 32 {
            None
        } else {
            Some(false)
        },
        orientation: None,
        // The decoder checks the raw values, before a negative height is turned round.
        over_decoder_cap: width > i64::from(BMP_DECODER_CAP)
            || raw_height > i64::from(BMP_DECODER_CAP),
    })
}

/// ICO: the entry `image`'s decoder picks (most bits per pixel, then most pixels; see its
/// `best_entry`), and the PNG or bitmap header inside it.
fn ico(b: &[u8]) -> Option<Header> {
    if !b.starts_with(&[0, 0, 1, 0]) {
        return None;
    }
    let count = usize::from(u16_le(b, 4)?);
    let entry = |i: usize| {
        let e = b.get(6 + 16 * i..6 + 16 * (i + 1))?;
        let side = |v: u8| if v == 0 { 256u32 } else { u32::from(v) };
        let score = (u16_le(e, 6)?, side(e[0]) * side(e[1]));
        Some((score, u32_le(e, 12)?))
    };
    let mut best = entry(count.checked_sub(1)?)?;
    for i in 0..count - 1 {
        let e = entry(i)?;
        if e.0 > best.0 {
            best = e;
        }
    }
    let inner = b.get(usize::try_from(best.1).ok()?..)?;
    let header = if inner.starts_with(&PNG_SIGNATURE) {
        png(inner)?
    } else {
        bmp(inner, true)?
    };
    Some(Header {
        format: ImageFormat::Ico,
        ..header
    })
}

/// JPEG: the first start-of-frame segment, and an APP1 `Exif` segment before it.
fn jpeg(b: &[u8]) -> Option<Header> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut orientation = None;
    let mut at = 2usize;
    loop {
        if *b.get(at)? != 0xFF {
            return None;
        }
        let marker = *b.get(at + 1)?;
        match marker {
            0xFF => at += 1, // fill byte
            0x01 | 0xD0..=0xD7 => at += 2,
            0xD9 | 0xDA => return None, // end of image, or scan data before any frame
            _ => {
                let len = usize::from(u16_be(b, at + 2)?);
                let body = b.get(at + 4..(at + 2 + len).max(at + 4))?;
                match marker {
                    0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                        return Some(Header {
                            format: ImageFormat::Jpeg,
                            height: u32::from(u16_be(body, 1)?),
                            width: u32::from(u16_be(body, 3)?),
                            // `image` decodes JPEG to grey or RGB.
                            has_alpha: Some(false),
                            orientation,
                            over_decoder_cap: false,
                        });
                    }
                    0xE1 if body.starts_with(b"Exif\0\0") && orientation.is_none() => {
                        orientation = Orientation::from_exif_chunk(&body[6..]);
                    }
                    _ => {}
                }
                at += 2 + len;
            }
        }
    }
}

/// WebP: the first chunk, `VP8 ` (lossy), `VP8L` (lossless) or `VP8X` (extended: the canvas).
fn webp(b: &[u8]) -> Option<Header> {
    if !b.starts_with(b"RIFF") || b.get(8..12)? != b"WEBP" {
        return None;
    }
    let (width, height, has_alpha) = match b.get(12..16)? {
        b"VP8 " => {
            if b.get(23..26)? != [0x9D, 0x01, 0x2A] {
                return None;
            }
            (
                u32::from(u16_le(b, 26)? & 0x3FFF),
                u32::from(u16_le(b, 28)? & 0x3FFF),
                Some(false),
            )
        }
        b"VP8L" => {
            if *b.get(20)? != 0x2F {
                return None;
            }
            let bits = u32_le(b, 21)?;
            (
                (bits & 0x3FFF) + 1,
                ((bits >> 14) & 0x3FFF) + 1,
                Some(bits >> 28 & 1 == 1),
            )
        }
        b"VP8X" => {
            let flags = *b.get(20)?;
            let (w, h) = (u24_le(b, 24)?, u24_le(b, 27)?);
            (w + 1, h + 1, Some(flags & 0x10 != 0))
        }
        _ => return None,
    };
    Some(Header {
        format: ImageFormat::WebP,
        width,
        height,
        has_alpha,
        orientation: None,
        over_decoder_cap: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(img: image::DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    /// The header sizes agree with what `image`'s own decoders report, for every format.
    #[test]
    fn headers_agree_with_the_decoders() {
        let rgba = image::RgbaImage::from_fn(7, 5, |x, y| image::Rgba([x as u8, y as u8, 3, 128]));
        let rgb = image::DynamicImage::ImageRgba8(rgba.clone()).into_rgb8();
        for (format, img, alpha) in [
            (ImageFormat::Png, rgba.clone().into(), Some(true)),
            (ImageFormat::Png, rgb.clone().into(), Some(false)),
            (ImageFormat::Gif, rgba.clone().into(), Some(true)),
            (ImageFormat::Bmp, rgb.clone().into(), Some(false)),
            (ImageFormat::Jpeg, rgb.clone().into(), Some(false)),
            (ImageFormat::WebP, rgba.clone().into(), Some(true)),
            (ImageFormat::Ico, rgba.clone().into(), Some(true)),
        ] {
            let bytes = encode(img, format);
            let h = sniff(format, &bytes).unwrap_or_else(|| panic!("{format:?}"));
            assert_eq!((h.format, h.width, h.height), (format, 7, 5), "{format:?}");
            assert_eq!(h.has_alpha, alpha, "{format:?}");
            assert!(!h.over_decoder_cap);
            // Every prefix is read safely: a header or nothing, never a panic.
            for n in 0..bytes.len().min(200) {
                if let Some(p) = sniff(format, &bytes[..n]) {
                    assert_eq!((p.width, p.height), (7, 5), "{format:?} cut at {n}");
                }
            }
        }
    }

    #[test]
    fn bmp_heights_and_the_decoder_cap() {
        let bmp = |w: i32, h: i32| {
            let mut b = b"BM".to_vec();
            b.extend_from_slice(&[0; 12]);
            b.extend_from_slice(&40u32.to_le_bytes());
            b.extend_from_slice(&w.to_le_bytes());
            b.extend_from_slice(&h.to_le_bytes());
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&24u16.to_le_bytes());
            b
        };
        let h = sniff(ImageFormat::Bmp, &bmp(100_000, -100_000)).unwrap();
        assert_eq!(
            (h.width, h.height, h.over_decoder_cap),
            (100_000, 100_000, true)
        );
        let h = sniff(ImageFormat::Bmp, &bmp(10, -70_000)).unwrap();
        assert_eq!((h.width, h.height, h.over_decoder_cap), (10, 70_000, false));
        let h = sniff(ImageFormat::Bmp, &bmp(65_535, 65_535)).unwrap();
        assert!(!h.over_decoder_cap);
        let h = sniff(ImageFormat::Bmp, &bmp(1, i32::MIN)).unwrap();
        assert_eq!(h.height, 1 << 31);
        assert_eq!(sniff(ImageFormat::Bmp, &bmp(-5, 5)), None);
        // BITMAPCOREHEADER: 16-bit sizes.
        let mut core = b"BM".to_vec();
        core.extend_from_slice(&[0; 12]);
        core.extend_from_slice(&12u32.to_le_bytes());
        core.extend_from_slice(&300u16.to_le_bytes());
        core.extend_from_slice(&200u16.to_le_bytes());
        core.extend_from_slice(&1u16.to_le_bytes());
        core.extend_from_slice(&8u16.to_le_bytes());
        let h = sniff(ImageFormat::Bmp, &core).unwrap();
        assert_eq!((h.width, h.height), (300, 200));
    }
}
