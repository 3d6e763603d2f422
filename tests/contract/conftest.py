"""The contract suite runs the adapters against the sandbox like the adapter tests do:
the same HTTP client and media fixtures."""

from tests.adapters.conftest import http, image_item, video_item

__all__ = ["http", "image_item", "video_item"]
