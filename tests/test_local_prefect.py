"""Without PREFECT_API_URL: one local Prefect server under the data folder, started by the first
command that needs it, reused by every later one, stopped by `booking-cron prefect stop`.

Real `booking-cron` processes with their own data folder (tmp_path), so no other test or clone
shares the server; every server a test starts is stopped before it ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from booking_cron.ops import prefect_api
from tests.factories import T

SCRIPT = Path(sys.executable).parent / "booking-cron"
BANNER = "Check out the dashboard at"  # what `prefect server start` prints once per start


def booking_cron(*args: str, data_dir: Path, **extra: str) -> subprocess.CompletedProcess:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "booking_cron"]
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_PROFILE")}
    env.update(BOOKING_CRON_DATA_DIR=str(data_dir), COLUMNS="200", **extra)
    return subprocess.run(command + list(args), capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture
def data_dirs(tmp_path):
    """Data folders for the test; whatever local server one of them holds is stopped at the end."""
    made: list[Path] = []

    def make(name: str) -> Path:
        made.append(tmp_path / name)
        return made[-1]

    yield make
    for folder in made:
        prefect_api.stop((folder / "prefect").resolve())


def test_eight_concurrent_runs_start_one_server_and_all_succeed(db, database_url, data_dirs):
    data = data_dirs("clone-a")
    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(lambda _: booking_cron("run", "--at", T.isoformat(), "--json", data_dir=data,
                                                    DATABASE_URL=database_url), range(8)))
    for d in done:
        assert d.returncode == 0, d.stdout[-2000:] + d.stderr[-3000:]
        assert json.loads(d.stdout)["completed"] == 0 and json.loads(d.stdout)["flow_run_id"]
    folder = (data / "prefect").resolve()
    server = prefect_api.recorded(folder)
    assert server is not None and prefect_api.running(folder) == server
    assert (folder / "server.log").read_text().count(BANNER) == 1  # one server started, seven reused it
    apis = {next(line for line in d.stderr.splitlines() if line.startswith("Prefect API")) for d in done}
    assert apis == {f"Prefect API {server.api_url} (booking-cron's local server, UI {server.ui_url})"}
    assert (folder / "prefect.db").exists()  # its own SQLite, in the folder

    status = booking_cron("prefect", "status", data_dir=data)
    assert status.returncode == 0 and server.ui_url in status.stdout, status.stdout + status.stderr

    # another clone (another data folder) gets its own server on its own port
    other = data_dirs("clone-b")
    started = booking_cron("prefect", "start", data_dir=other)
    assert started.returncode == 0 and "started" in started.stdout, started.stdout + started.stderr
    second = prefect_api.recorded((other / "prefect").resolve())
    assert second.port != server.port and prefect_api.running(folder) == server

    stopped = booking_cron("prefect", "stop", data_dir=data)
    assert stopped.returncode == 0 and f"stopped (pid {server.pid}" in stopped.stdout, stopped.stdout + stopped.stderr
    assert prefect_api.running(folder) is None and not prefect_api.answers(server.api_url)
    assert booking_cron("prefect", "status", data_dir=data).returncode == 1
    assert prefect_api.running((other / "prefect").resolve()) == second  # the other clone's is untouched


def test_commands_without_prefect_do_not_start_it(db, database_url, data_dirs):
    data = data_dirs("quiet")
    done = booking_cron("audit", data_dir=data, DATABASE_URL=database_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (data / "prefect" / "server.json").exists()
