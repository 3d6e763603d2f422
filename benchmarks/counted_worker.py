"""A Procfile worker line run as is, in this process, with its database writes and the
tasks it ran counted: what a benchmark needs to tell a worker process's own cost apart
from everything else writing to the same database.

    python -m benchmarks.counted_worker OUT.json celery -A workers.celery worker -Q metrics ...

Every write statement (INSERT, UPDATE, DELETE) is kept with its moment and table, every
commit with its moment, the tables its transaction wrote and the rows its INSERTs
reported, every task with its name; OUT.json is rewritten every REWRITE_SECONDS and once
more at exit.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REWRITE_SECONDS = 0.5
WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)


@dataclass
class Counts:
    # (moment, verb, table) of each write statement.
    writes: list[tuple[float, str, str]] = field(default_factory=list)
    # (moment, tables written, rows its INSERTs reported) of each commit that wrote.
    commits: list[tuple[float, list[str], int]] = field(default_factory=list)
    tasks: Counter[str] = field(default_factory=Counter)
    # The `outcome` of each task that answered one (a collect message's report).
    outcomes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "pid": os.getpid(),
                "writes": list(self.writes),
                "commits": list(self.commits),
                "tasks": dict(self.tasks),
                "outcomes": dict(self.outcomes),
            }


def install(out: Path) -> Counts:
    """Listeners on every engine the worker will make, and on its tasks; the file kept."""
    from celery.signals import task_postrun
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    counts = Counts()

    def before_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        match = WRITE.match(statement)
        if match is None:
            return
        verb, table = match.group(1).split()[0].upper(), match.group(2).lower()
        with counts.lock:
            counts.writes.append((time.time(), verb, table))
        conn.info.setdefault("bench_written", set()).add(table)

    def after_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        match = WRITE.match(statement)
        if match is not None and match.group(1).upper().startswith("INSERT"):
            conn.info["bench_inserted"] = conn.info.get("bench_inserted", 0) + max(
                cursor.rowcount, 0
            )

    def on_commit(conn: Any) -> None:
        written = conn.info.pop("bench_written", None)
        inserted = conn.info.pop("bench_inserted", 0)
        if written:
            with counts.lock:
                counts.commits.append((time.time(), sorted(written), inserted))

    def on_rollback(conn: Any) -> None:
        conn.info.pop("bench_written", None)
        conn.info.pop("bench_inserted", None)

    event.listen(Engine, "before_cursor_execute", before_execute)
    event.listen(Engine, "after_cursor_execute", after_execute)
    event.listen(Engine, "commit", on_commit)
    event.listen(Engine, "rollback", on_rollback)

    def on_task(sender: Any = None, retval: Any = None, **_: Any) -> None:
        with counts.lock:
            counts.tasks[getattr(sender, "name", str(sender))] += 1
            if isinstance(retval, dict) and isinstance(retval.get("outcome"), str):
                counts.outcomes[retval["outcome"]] += 1

    task_postrun.connect(on_task, weak=False)

    def rewrite() -> None:
        partial = out.with_suffix(".partial")
        partial.write_text(json.dumps(counts.as_dict()))
        partial.replace(out)

    def keep() -> None:
        while True:
            time.sleep(REWRITE_SECONDS)
            rewrite()

    threading.Thread(target=keep, daemon=True, name="bench-counts").start()
    atexit.register(rewrite)
    return counts


def main(argv: list[str]) -> None:
    out, command = Path(argv[0]), argv[1:]
    if not command or Path(command[0]).name != "celery":
        raise SystemExit("usage: python -m benchmarks.counted_worker OUT.json celery ...")
    install(out)
    from celery.__main__ import main as celery_main

    sys.argv = command
    celery_main()


if __name__ == "__main__":
    main(sys.argv[1:])
