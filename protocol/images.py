"""Images as they travel: 8-bit RGBA, row-major, with explicit width and height."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RGBAImage:
    """An 8-bit RGBA image: ``data`` holds width*height*4 bytes, rows top to bottom."""

    width: int
    height: int
    data: bytes

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            # bool is an int subclass; a True width is a caller bug, not a 1-pixel image.
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"RGBAImage {name} must be an int, got {type(v).__name__}")
            if v < 1:
                raise ValueError(f"RGBAImage {name} must be at least 1, got {v}")
        if isinstance(self.data, (bytearray, memoryview)):
            object.__setattr__(self, "data", bytes(self.data))
        if not isinstance(self.data, bytes):
            raise TypeError(f"RGBAImage data must be bytes, got {type(self.data).__name__}")
        expected = self.width * self.height * 4
        if len(self.data) != expected:
            raise ValueError(
                f"RGBAImage data has {len(self.data)} bytes but a {self.width}x{self.height} "
                f"RGBA image needs {expected} (width*height*4)"
            )

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def __repr__(self) -> str:  # never dump megabytes of pixels into a log
        return f"RGBAImage({self.width}x{self.height})"

    @classmethod
    def from_rgb(cls, width: int, height: int, rgb: bytes) -> "RGBAImage":
        """Build from packed 8-bit RGB (width*height*3 bytes) with opaque alpha."""
        if len(rgb) != width * height * 3:
            raise ValueError(
                f"RGB data has {len(rgb)} bytes but {width}x{height} RGB needs {width * height * 3}"
            )
        out = bytearray(b"\xff") * (width * height * 4)
        for c in range(3):  # strided slice copies run in C, no per-pixel Python loop
            out[c::4] = rgb[c::3]
        return cls(width, height, bytes(out))

    def to_rgb(self) -> bytes:
        """Packed 8-bit RGB (alpha dropped)."""
        out = bytearray(self.width * self.height * 3)
        for c in range(3):
            out[c::3] = self.data[c::4]
        return bytes(out)

    @classmethod
    def filled(cls, width: int, height: int, rgba: tuple[int, int, int, int]) -> "RGBAImage":
        """A single-colour image (handy for masks and tests)."""
        return cls(width, height, bytes(rgba) * (width * height))
