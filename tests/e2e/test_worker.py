"""`creditledger worker`: runs the periodic jobs until SIGTERM, then stops cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path


def test_the_worker_runs_the_jobs_until_sigterm_and_exits_cleanly(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "worker.db"
    shutil.copy(sqlite_template, path)
    with subprocess.Popen(
        [sys.executable, "-m", "creditledger.entrypoints.cli", "worker"],
        env=os.environ | {"CREDITLEDGER_DATABASE_URL": f"sqlite:///{path}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as worker:
        try:
            assert worker.stdout is not None
            first_line = worker.stdout.readline()
            worker.send_signal(signal.SIGTERM)
            _, errors = worker.communicate(timeout=15)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    assert first_line.startswith("worker running jobs: ")
    assert "expire" in first_line.removeprefix("worker running jobs: ").strip().split(", ")
    assert (worker.returncode, errors) == (0, "")
