//! Pixel formats a raster pixmap can hold. Byte orders are in memory (the same on every host);
//! the toolkits' names for them (on little-endian hosts) are in the C header, on
//! `PixcacheFormat`.

/// The layout of one pixel in a raster [`crate::Pixmap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// 8-bit red, green, blue, alpha in that byte order; straight (not premultiplied) alpha.
    Rgba8888,
    /// 8-bit blue, green, red, alpha in that byte order, alpha premultiplied: Qt's
    /// `QImage::Format_ARGB32_Premultiplied` and Cairo's `CAIRO_FORMAT_ARGB32` on little-endian.
    Bgra8888Premultiplied,
    /// 8-bit red, green, blue; no alpha.
    Rgb888,
    /// 8-bit luminance.
    Gray8,
    /// 8-bit blue, green, red, alpha in that byte order; straight alpha: Qt's
    /// `QImage::Format_ARGB32` on little-endian.
    Bgra8888,
    /// 8-bit blue, green, red and an unused byte, written 0xFF and ignored on reading (every
    /// pixel is opaque): Qt's `QImage::Format_RGB32` and Cairo's `CAIRO_FORMAT_RGB24` on
    /// little-endian.
    Bgrx8888,
    /// 8-bit red, green, blue, alpha in that byte order, alpha premultiplied: Qt's
    /// `QImage::Format_RGBA8888_Premultiplied`, Skia's premultiplied `kRGBA_8888_SkColorType`.
    Rgba8888Premultiplied,
}

/// How a format stores alpha.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpha {
    /// No alpha: every pixel is opaque.
    Opaque,
    /// Colour channels as they are, alpha beside them.
    Straight,
    /// Colour channels multiplied by alpha.
    Premultiplied,
}

impl Format {
    /// Every format, in the order of their C codes.
    pub const ALL: [Format; 7] = [
        Format::Rgba8888,
        Format::Bgra8888Premultiplied,
        Format::Rgb888,
        Format::Gray8,
        Format::Bgra8888,
        Format::Bgrx8888,
        Format::Rgba8888Premultiplied,
    ];

    /// Bytes one pixel takes.
    pub const fn bytes_per_pixel(self) -> u32 {
        match self {
            Format::Rgba8888
            | Format::Bgra8888Premultiplied
            | Format::Bgra8888
            | Format::Bgrx8888
            | Format::Rgba8888Premultiplied => 4,
            Format::Rgb888 => 3,
            Format::Gray8 => 1,
        }
    }

    /// Bits per pixel, as `QPixmap::depth()` reports them.
    pub const fn depth(self) -> u32 {
        self.bytes_per_pixel() * 8
    }

    /// How the format stores alpha.
    pub const fn alpha(self) -> Alpha {
        match self {
            Format::Rgba8888 | Format::Bgra8888 => Alpha::Straight,
            Format::Bgra8888Premultiplied | Format::Rgba8888Premultiplied => Alpha::Premultiplied,
            Format::Rgb888 | Format::Gray8 | Format::Bgrx8888 => Alpha::Opaque,
        }
    }

    /// Whether the format carries an alpha channel.
    pub const fn has_alpha(self) -> bool {
        !matches!(self.alpha(), Alpha::Opaque)
    }

    /// The format's number: the same as its `PIXCACHE_FORMAT_*` code in the C API (1 to 8;
    /// 5 is foreign pixmaps', which have no raster format). Used in file keys.
    pub const fn number(self) -> u32 {
        match self {
            Format::Rgba8888 => 1,
            Format::Bgra8888Premultiplied => 2,
            Format::Rgb888 => 3,
            Format::Gray8 => 4,
            Format::Bgra8888 => 6,
            Format::Bgrx8888 => 7,
            Format::Rgba8888Premultiplied => 8,
        }
    }
}
