"""Run measured ticks in subprocesses (bench.worker) and collect what they report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_tick(db: str, at: datetime, shard: str | None = None, env: dict | None = None):
    """Launch one measured tick; returns what finish_tick takes."""
    fd, out = tempfile.mkstemp(prefix="bench-tick-", suffix=".json")
    os.close(fd)
    cmd = [sys.executable, "-m", "bench.worker", "--db", db, "--at", at.isoformat(), "--out", out]
    if shard:
        cmd += ["--shard", shard]
    with open(out + ".log", "w") as log:
        process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log,
                                   stderr=subprocess.STDOUT)
    return process, out, time.perf_counter()


def finish_tick(process: subprocess.Popen, out: str, launched: float) -> dict:
    """Wait for a launched tick; its measurements plus the process's wall time (start-up included)."""
    code = process.wait()
    wall = time.perf_counter() - launched
    log = Path(out + ".log").read_text()
    try:
        if code != 0:
            raise RuntimeError(f"bench.worker exited {code}:\n{log[-3000:]}")
        result = json.loads(Path(out).read_text())
        if not result["completed"]:
            raise RuntimeError(f"tick did not complete: {result['summary']}\n{log[-3000:]}")
    finally:
        Path(out).unlink(missing_ok=True)
        Path(out + ".log").unlink(missing_ok=True)
    result["process_wall"] = wall
    return result


def tick_in_subprocess(db: str, at: datetime, shard: str | None = None, env: dict | None = None) -> dict:
    return finish_tick(*start_tick(db, at, shard, env))
