"""A worker process killed half-way through a job (kill -9): another worker finishes it, repeating nothing."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import Table, select

from kokyaku.db import Database
from kokyaku.jobs.models import Job
from kokyaku.jobs.service import enqueue
from kokyaku.jobs.worker import Worker
from tests.jobs.conftest import RUNS
from tests.jobs.test_queue import _stepper

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    from tests.jobs.test_queue import _stepper
    from kokyaku.db import Database
    from kokyaku.jobs.worker import Worker

    db = Database(sys.argv[1])
    Worker(db, worker_id="doomed", handlers={"test.steps": _stepper(pause=0.2, steps=10)},
           poll_interval=0.05, lease_seconds=1.0).run()
    """
)


@pytest.mark.slow
def test_a_killed_worker_process_leaves_a_job_that_another_finishes_without_duplicates(
    db: Database, runs: Table, tmp_path: Path
) -> None:
    with db.session() as s:
        job_id = enqueue(s, kind="test.steps", payload={}).id
    script = tmp_path / "doomed_worker.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}
    proc = subprocess.Popen([sys.executable, str(script), db.url], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with db.session(write=False) as s:
                state = s.scalar(select(Job.state).where(Job.id == job_id))
            if state and state.get("next", 0) >= 3:
                break
            assert proc.poll() is None, "the worker process ended early"
            time.sleep(0.05)
        else:
            raise AssertionError("the worker process made no progress")
        proc.send_signal(signal.SIGKILL)  # no clean-up, no hand-back: the lease is all that is left
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.status == "running" and job.locked_by == "doomed"
        done_before = job.state["next"]
    assert 3 <= done_before < 10

    rescuer = Worker(db, worker_id="rescuer", handlers={"test.steps": _stepper(steps=10)})
    deadline = time.monotonic() + 10
    outcomes = rescuer.drain()
    while not outcomes and time.monotonic() < deadline:  # until the dead worker's 1 s lease has run out
        time.sleep(0.1)
        outcomes = rescuer.drain()
    assert outcomes == {"succeeded": 1}
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.status == "succeeded" and job.attempts == 2
        rows = s.execute(select(RUNS.c.step, RUNS.c.worker).order_by(RUNS.c.step)).all()
    assert [step for step, _ in rows] == list(range(10))  # every step once: none lost, none repeated
    assert {w for step, w in rows if step < done_before} == {"doomed"}
    assert {w for step, w in rows if step >= done_before} == {"rescuer"}
