//! Pixel formats a raster pixmap can hold.

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
}

impl Format {
    /// Every format, in the order of their C codes.
    pub const ALL: [Format; 4] = [
        Format::Rgba8888,
        Format::Bgra8888Premultiplied,
        Format::Rgb888,
        Format::Gray8,
    ];

    /// Bytes one pixel takes.
    pub const fn bytes_per_pixel(self) -> u32 {
        match self {
            Format::Rgba8888 | Format::Bgra8888Premultiplied => 4,
            Format::Rgb888 => 3,
            Format::Gray8 => 1,
        }
    }

    /// Bits per pixel, as `QPixmap::depth()` reports them.
    pub const fn depth(self) -> u32 {
        self.bytes_per_pixel() * 8
    }

    /// Whether the format carries an alpha channel.
    pub const fn has_alpha(self) -> bool {
        matches!(self, Format::Rgba8888 | Format::Bgra8888Premultiplied)
    }
}
