"""WSGI entry point for gunicorn: `gunicorn app.wsgi:app`."""

import sys

from app import create_app
from app.security import InsecureSecretKey

try:
    app = create_app()
except InsecureSecretKey as exc:
    # gunicorn would bury this under a traceback and boot workers in a loop.
    print(f"crier web refuses to start: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(4) from None
