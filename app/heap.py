"""The startup heap, kept out of the garbage collector's full collections.

A long-lived process (a gunicorn worker, a Celery worker) makes most of its objects
while it starts: modules, the Flask app, SQLAlchemy's mappers, marshmallow's schemas,
the platform adapters. They live as long as the process, yet CPython's full collection
walks every one of them each time, holding the GIL: 90 to 175 ms at a time in a publishing
worker, several times during a burst, with every thread stopped. Frozen (`gc.freeze`),
they are left out, and a full collection walks only what was made since.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("crier.heap")


def freeze_startup_heap() -> int:
    """Collect what starting left as garbage, then freeze the rest; returns how many
    objects were frozen. Call once, when the process has finished starting."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("startup heap frozen: %d objects", frozen)
    return frozen
