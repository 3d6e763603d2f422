"""OAuth connect flows, one module per platform. The API runs them (POST
/accounts/connect and its callback), so they live on the API side; the adapters share
their platform constants through app.platforms.

Importing this package registers every flow with `app.oauth` (see its docstring).
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


load_all()
