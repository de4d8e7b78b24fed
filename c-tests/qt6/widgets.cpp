// widgets.cpp: an ordinary Qt Widgets program, built against Qt only, whose painting goes
// through QPixmapCache the ways real programs' does:
//   - the Fusion style (buttons, check boxes, combo boxes, sliders, spin boxes, progress bars,
//     tabs, group boxes, frames: Fusion caches their pieces under string keys);
//   - a dial (QStyleHelper::drawDial caches its background);
//   - item views with icons (QItemDelegate / QStyledItemDelegate);
//   - graphics effects (QGraphicsDropShadowEffect, QGraphicsColorizeEffect: cached by Key);
//   - a QGraphicsView whose items use ItemCoordinateCache / DeviceCoordinateCache (Key API);
//   - QIcon;
//   - a widget of its own that caches its rendering with QPixmapCache (string and Key).
// It renders FRAMES frames offscreen (QWidget::grab), changing the widgets' state between them,
// and prints one line per frame: a hash of its pixels. scripts/test-qt6-replace.sh runs it with
// Qt's own cache and through pixcache-run and requires identical lines.
//
// Usage: widgets [FRAMES]   (default 24)
#include <QApplication>
#include <QCheckBox>
#include <QComboBox>
#include <QDial>
#include <QGraphicsDropShadowEffect>
#include <QGraphicsColorizeEffect>
#include <QGraphicsEllipseItem>
#include <QGraphicsRectItem>
#include <QGraphicsScene>
#include <QGraphicsView>
#include <QGridLayout>
#include <QGroupBox>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPainter>
#include <QPixmapCache>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QScrollBar>
#include <QSlider>
#include <QSpinBox>
#include <QStyleFactory>
#include <QTabWidget>
#include <QTreeWidget>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {

// A widget that renders a badge once per (text, state) into the pixmap cache, as applications do.
class Badge : public QWidget {
public:
    explicit Badge(QWidget *parent) : QWidget(parent) { setMinimumSize(120, 40); }
    int state = 0;

protected:
    void paintEvent(QPaintEvent *) override {
        const QString key = QStringLiteral("badge:%1:%2x%3").arg(state % 5).arg(width()).arg(height());
        QPixmap pm;
        if (!QPixmapCache::find(key, &pm)) {
            pm = QPixmap(size());
            pm.fill(Qt::transparent);
            QPainter p(&pm);
            p.setRenderHint(QPainter::Antialiasing);
            p.setBrush(QColor::fromHsv((state % 5) * 60, 160, 220));
            p.drawRoundedRect(rect().adjusted(1, 1, -1, -1), 8, 8);
            p.drawText(rect(), Qt::AlignCenter, QStringLiteral("state %1").arg(state % 5));
            p.end();
            QPixmapCache::insert(key, pm);
        }
        // And a generated key for a glow that is replaced when the state changes.
        if (!QPixmapCache::find(glow, &pm) || lastGlow != state % 3) {
            QPixmap g(16, 16);
            g.fill(QColor::fromHsv((state % 3) * 100, 200, 255));
            if (!glow.isValid() || !QPixmapCache::replace(glow, g)) glow = QPixmapCache::insert(g);
            lastGlow = state % 3;
            pm = g;
        }
        QPainter painter(this);
        QPixmap badge;
        if (QPixmapCache::find(key, &badge)) painter.drawPixmap(0, 0, badge);
        painter.drawPixmap(width() - 18, 2, pm);
    }

private:
    QPixmapCache::Key glow;
    int lastGlow = -1;
};

uint64_t fnv(const QImage &image) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int y = 0; y < image.height(); ++y) {
        const uchar *row = image.constScanLine(y);
        for (qsizetype x = 0; x < qsizetype(image.width()) * 4; ++x) h = (h ^ row[x]) * 0x100000001b3ull;
    }
    return h;
}

}  // namespace

int main(int argc, char **argv) {
    QApplication app(argc, argv);
    app.setStyle(QStyleFactory::create(QStringLiteral("Fusion")));
    const int frames = argc > 1 ? std::atoi(argv[1]) : 24;

    QWidget window;
    window.resize(720, 560);
    auto *grid = new QGridLayout(&window);

    auto *buttons = new QGroupBox(QStringLiteral("Buttons"));
    auto *bl = new QGridLayout(buttons);
    QPixmap pushIcon(16, 16);
    pushIcon.fill(Qt::darkMagenta);
    auto *push = new QPushButton(QIcon(pushIcon), QStringLiteral("Push"));
    auto *check = new QCheckBox(QStringLiteral("Check"));
    auto *radio = new QRadioButton(QStringLiteral("Radio"));
    auto *combo = new QComboBox;
    combo->addItems({QStringLiteral("one"), QStringLiteral("two"), QStringLiteral("three")});
    auto *edit = new QLineEdit(QStringLiteral("text"));
    auto *spin = new QSpinBox;
    bl->addWidget(push, 0, 0);
    bl->addWidget(check, 0, 1);
    bl->addWidget(radio, 1, 0);
    bl->addWidget(combo, 1, 1);
    bl->addWidget(edit, 2, 0);
    bl->addWidget(spin, 2, 1);
    grid->addWidget(buttons, 0, 0);

    auto *ranges = new QGroupBox(QStringLiteral("Ranges"));
    auto *rl = new QGridLayout(ranges);
    auto *slider = new QSlider(Qt::Horizontal);
    auto *dial = new QDial;
    dial->setNotchesVisible(true);
    auto *progress = new QProgressBar;
    auto *scroll = new QScrollBar(Qt::Horizontal);
    rl->addWidget(slider, 0, 0);
    rl->addWidget(dial, 0, 1, 2, 1);
    rl->addWidget(progress, 1, 0);
    rl->addWidget(scroll, 2, 0);
    grid->addWidget(ranges, 0, 1);

    auto *tabs = new QTabWidget;
    auto *list = new QListWidget;
    for (int i = 0; i < 8; ++i) {
        QPixmap icon(24, 24);
        icon.fill(QColor::fromHsv(i * 40, 200, 200));
        list->addItem(new QListWidgetItem(QIcon(icon), QStringLiteral("item %1").arg(i)));
    }
    auto *tree = new QTreeWidget;
    tree->setHeaderLabels({QStringLiteral("Name"), QStringLiteral("Value")});
    for (int i = 0; i < 6; ++i) {
        auto *item = new QTreeWidgetItem(tree, {QStringLiteral("node %1").arg(i), QString::number(i * i)});
        new QTreeWidgetItem(item, {QStringLiteral("leaf"), QStringLiteral("-")});
    }
    tree->expandAll();
    tabs->addTab(list, QStringLiteral("List"));
    tabs->addTab(tree, QStringLiteral("Tree"));
    grid->addWidget(tabs, 1, 0);

    auto *scene = new QGraphicsScene(0, 0, 300, 200);
    auto *view = new QGraphicsView(scene);
    auto *ellipse = scene->addEllipse(20, 20, 120, 80, QPen(Qt::black), QBrush(Qt::yellow));
    ellipse->setCacheMode(QGraphicsItem::DeviceCoordinateCache);
    auto *rect = scene->addRect(150, 60, 100, 100, QPen(Qt::darkGreen), QBrush(Qt::cyan));
    rect->setCacheMode(QGraphicsItem::ItemCoordinateCache);
    auto *shadow = new QGraphicsDropShadowEffect;
    shadow->setBlurRadius(8);
    shadow->setOffset(4, 4);
    rect->setGraphicsEffect(shadow);
    grid->addWidget(view, 1, 1);

    auto *badge = new Badge(nullptr);
    auto *label = new QLabel(QStringLiteral("Colorized label"));
    auto *colorize = new QGraphicsColorizeEffect;
    colorize->setColor(Qt::darkRed);
    label->setGraphicsEffect(colorize);
    grid->addWidget(badge, 2, 0);
    grid->addWidget(label, 2, 1);

    window.show();
    for (int frame = 0; frame < frames; ++frame) {
        slider->setValue(frame * 4 % 100);
        dial->setValue(frame * 7 % 100);
        progress->setValue(frame * 5 % 101);
        scroll->setValue(frame * 3 % 100);
        spin->setValue(frame);
        check->setChecked(frame % 2);
        radio->setChecked(frame % 3 == 0);
        combo->setCurrentIndex(frame % 3);
        tabs->setCurrentIndex(frame / 4 % 2);
        list->setCurrentRow(frame % 8);
        ellipse->setRotation(frame * 10);
        rect->setPos(frame % 5, 0);
        badge->state = frame;
        badge->update();
        app.processEvents();
        const QImage image = window.grab().toImage().convertToFormat(QImage::Format_ARGB32);
        std::printf("frame %d: %dx%d %016llx\n", frame, image.width(), image.height(), (unsigned long long)fnv(image));
    }
    return 0;
}
