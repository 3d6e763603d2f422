"""Old import path of the sandbox, which is now its own top-level package `sandbox`."""

from sandbox import SANDBOX_PLATFORMS, create_sandbox_app

__all__ = ["SANDBOX_PLATFORMS", "create_sandbox_app"]
