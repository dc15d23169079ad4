"""The one place that imports Qt: PyQt5 in Krita 5, PyQt6 in Krita 6.

Everything else imports Qt names from here. The differences that matter to this
plugin are PyQt6's fully scoped enums (Qt.AlignmentFlag.AlignLeft) and the loss
of exec_(); the scoped spelling works in PyQt5 too, so the code uses it and only
a few names are papered over below.
"""

from __future__ import annotations

try:  # Krita 6
    from PyQt6 import QtCore, QtGui, QtWidgets  # type: ignore[import-not-found]

    QT_API = "PyQt6"
except ImportError:  # Krita 5
    from PyQt5 import QtCore, QtGui, QtWidgets  # type: ignore[no-redef]

    QT_API = "PyQt5"

Qt = QtCore.Qt
QObject = QtCore.QObject
QTimer = QtCore.QTimer
QThread = QtCore.QThread
QEventLoop = QtCore.QEventLoop
QByteArray = QtCore.QByteArray
QSize = QtCore.QSize
pyqtSignal = QtCore.pyqtSignal
pyqtSlot = QtCore.pyqtSlot

QColor = QtGui.QColor
QImage = QtGui.QImage
QPixmap = QtGui.QPixmap
QGuiApplication = QtGui.QGuiApplication

QApplication = QtWidgets.QApplication
QWidget = QtWidgets.QWidget
QLabel = QtWidgets.QLabel
QLineEdit = QtWidgets.QLineEdit
QPushButton = QtWidgets.QPushButton
QToolButton = QtWidgets.QToolButton
QComboBox = QtWidgets.QComboBox
QSpinBox = QtWidgets.QSpinBox
QCheckBox = QtWidgets.QCheckBox
QProgressBar = QtWidgets.QProgressBar
QPlainTextEdit = QtWidgets.QPlainTextEdit
QGroupBox = QtWidgets.QGroupBox
QVBoxLayout = QtWidgets.QVBoxLayout
QHBoxLayout = QtWidgets.QHBoxLayout
QGridLayout = QtWidgets.QGridLayout
QFormLayout = QtWidgets.QFormLayout
QScrollArea = QtWidgets.QScrollArea
QSizePolicy = QtWidgets.QSizePolicy
QFrame = QtWidgets.QFrame
QMessageBox = QtWidgets.QMessageBox

# Scoped enums (valid in PyQt5 >= 5.11 and PyQt6).
FORMAT_RGBA8888 = QImage.Format.Format_RGBA8888
ALIGN_CENTER = Qt.AlignmentFlag.AlignCenter
TOOLTIP_ROLE = Qt.ItemDataRole.ToolTipRole
KEEP_ASPECT = Qt.AspectRatioMode.KeepAspectRatio
SMOOTH = Qt.TransformationMode.SmoothTransformation
TEXT_SELECTABLE = Qt.TextInteractionFlag.TextSelectableByMouse
SIZE_EXPANDING = QSizePolicy.Policy.Expanding
SIZE_PREFERRED = QSizePolicy.Policy.Preferred
SIZE_FIXED = QSizePolicy.Policy.Fixed


def qimage_from_rgba(width: int, height: int, rgba: bytes) -> "QImage":
    """A QImage that owns a copy of 8-bit RGBA pixels (the bytes may be freed after)."""
    img = QImage(rgba, width, height, width * 4, FORMAT_RGBA8888)
    return img.copy()

