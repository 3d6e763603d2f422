"""WSGI entry point for gunicorn: `gunicorn app.wsgi:app`."""

import sys

from app import create_app
from app.heap import freeze_startup_heap
from app.security import InsecureSecretKey

try:
    app = create_app()
except InsecureSecretKey as exc:
    # gunicorn would bury this under a traceback and boot workers in a loop.
    print(f"crier web refuses to start: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(4) from None

# Each gunicorn worker imports this module once: what it made lives as long as the worker.
freeze_startup_heap()
