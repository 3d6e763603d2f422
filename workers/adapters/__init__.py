"""Platform adapters, one module per platform, registered by platform name."""

from __future__ import annotations

import httpx

from app.config import Settings
from workers.adapters.base import Adapter

_REGISTRY: dict[str, type[Adapter]] = {}


def register(cls: type[Adapter]) -> type[Adapter]:
    _REGISTRY[cls.platform] = cls
    return cls


def adapter_classes() -> dict[str, type[Adapter]]:
    _load_all()
    return dict(_REGISTRY)


def get_adapter(
    platform: str,
    http: httpx.Client,
    base_url: str | None = None,
    settings: Settings | None = None,
) -> Adapter:
    """The platform's adapter; `settings` carries the app credentials and API versions it
    needs (the defaults where none are given)."""
    _load_all()
    return _REGISTRY[platform](http, base_url, settings)


def _load_all() -> None:
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
