// widget_paint.cpp: a Qt widget's paint code, the way Qt's documentation caches pixmaps, built
// twice from this one file: with -DUSE_QPIXMAPCACHE against Qt's QPixmapCache ("before"), and
// without it against pixcache::qt::PixmapCache ("after"). The switch is the include and the
// class name below. scripts/test-qt.sh runs both and requires identical output.
#include <QGuiApplication>
#include <QImage>
#include <QPainter>
#include <QPixmap>
#include <cstdio>

#ifdef USE_QPIXMAPCACHE
#include <QPixmapCache>
using PixmapCache = QPixmapCache;
static const char *const kImpl = "QPixmapCache";
#else
#include <pixcache_qt.hpp>
using PixmapCache = pixcache::qt::PixmapCache;
static const char *const kImpl = "pixcache::qt::PixmapCache";
#endif

static int renders = 0;

// Expensive to draw: what the cache is for.
static QPixmap renderButton(const QString &label, const QSize &size, bool pressed) {
    ++renders;
    QPixmap pm(size);
    pm.fill(Qt::transparent);
    QPainter p(&pm);
    p.setRenderHint(QPainter::Antialiasing);
    p.setBrush(pressed ? QColor(40, 90, 200) : QColor(70, 130, 230));
    p.drawRoundedRect(QRectF(0.5, 0.5, size.width() - 1, size.height() - 1), 6, 6);
    p.setPen(Qt::white);
    p.drawLine(8, size.height() / 2, 8 + 4 * int(label.size()), size.height() / 2);
    return pm;
}

// The paint code of a "widget": unchanged between the two builds.
static void paintButton(QPainter &painter, const QPoint &at, const QString &label, bool pressed) {
    const QSize size(96, 32);
    const QString key = QStringLiteral("button:%1:%2x%3:%4").arg(label).arg(size.width()).arg(size.height()).arg(pressed);
    QPixmap pm;
    if (!PixmapCache::find(key, &pm)) {
        pm = renderButton(label, size, pressed);
        PixmapCache::insert(key, pm);
    }
    painter.drawPixmap(at, pm);
}

int main(int argc, char **argv) {
    QGuiApplication app(argc, argv);
    QImage screen(640, 200, QImage::Format_ARGB32_Premultiplied);
    const QStringList labels = {"Open", "Save", "Close", "Settings", "Help"};
    for (int frame = 0; frame < 60; ++frame) {
        screen.fill(Qt::white);
        QPainter painter(&screen);
        for (int i = 0; i < labels.size(); ++i) paintButton(painter, QPoint(8 + 120 * i, 80), labels[i], frame % 10 == i);
    }
    quint64 sum = 0;
    for (int y = 0; y < screen.height(); ++y) {
        const uchar *row = screen.constScanLine(y);
        for (int x = 0; x < screen.bytesPerLine(); ++x) sum = sum * 31 + row[x];
    }
    std::printf("60 frames of 5 buttons: %d renders, screen checksum %016llx\n", renders, (unsigned long long)sum);
    std::fprintf(stderr, "(%s)\n", kImpl);
    return renders == 10 ? 0 : 1;  // 5 labels x {pressed, released}, each drawn once
}
