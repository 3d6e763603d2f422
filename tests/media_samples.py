"""Media for tests: the same generators the dev stack uses for its demo post."""

from app.samples import jpeg_bytes, mp4_bytes, png_bytes

__all__ = ["jpeg_bytes", "mp4_bytes", "png_bytes"]
