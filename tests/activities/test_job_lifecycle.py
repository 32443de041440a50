"""A child job's death is typed by its cause, and nothing of a job outlives the worker that ran it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

import activities.child_process as child_process
from activities.artifacts import LocalArtifactStore
from activities.cad import CadActivities, ExtractObjectsInput
from activities.child_process import ChildJobRunner, own_jobs_folder, remove_dead_workers_job_folders
from core.errors import JobCrashedError, JobKilledError, ModuleError, module_error
from support.misbehaving_job import Probe
from support.processes import alive, wait_for

JOB = "tests.support.misbehaving_job"
REPO_ROOT = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")


# --- the cause of a death decides whether a retry may help --------------------------------------


async def test_a_child_killed_from_outside_is_a_retryable_job_killed():
    with pytest.raises(ModuleError) as failure:
        await ChildJobRunner().run(JOB, "killed", Probe(), timeout_s=60)
    assert isinstance(failure.value, JobKilledError)
    assert (failure.value.code, failure.value.retryable) == ("job_killed", True)
    assert "SIGKILL" in failure.value.message


@pytest.mark.parametrize(
    ("op", "shown"), [("crash", "SIGSEGV"), ("abort", "SIGABRT"), ("quit_silently", "7")]
)
async def test_a_child_that_dies_of_its_own_fault_stays_a_permanent_job_crashed(op, shown):
    with pytest.raises(ModuleError) as failure:
        await ChildJobRunner().run(JOB, op, Probe(), timeout_s=60)
    assert (failure.value.code, failure.value.retryable) == ("job_crashed", False)
    assert shown in failure.value.message


def test_job_killed_is_a_module_error_of_its_own_not_a_crash():
    assert not issubclass(JobKilledError, JobCrashedError)
    assert type(module_error("job_killed", "gone")) is JobKilledError


class _Runner(ChildJobRunner):
    def __init__(self, error: ModuleError):
        super().__init__()
        object.__setattr__(self, "error", error)

    async def run(self, *args, **kwargs):
        raise self.error  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        (JobCrashedError("step_job.tree crashed (SIGSEGV)"), "invalid_cad_file", False),
        (JobKilledError("step_job.tree was killed from outside (SIGKILL)"), "job_killed", True),
    ],
)
async def test_cad_blames_the_file_for_a_kernel_crash_but_not_for_a_kill(tmp_path, error, code, retryable):
    store = LocalArtifactStore(tmp_path / "store")
    step = tmp_path / "part.step"
    step.write_text("ISO-10303-21;")
    ref = store.put_file(step, role="step_file")
    with pytest.raises(ApplicationError) as failure:  # what crosses Temporal
        await CadActivities(store, _Runner(error)).extract_objects(ExtractObjectsInput(step_file=ref))
    assert (failure.value.type, failure.value.non_retryable) == (code, not retryable)


# --- nothing outlives the worker ----------------------------------------------------------------


@linux_only
def test_a_child_job_dies_with_a_worker_killed_by_sigkill(tmp_path):
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [sys.executable, "-m", "tests.support.job_parent", str(pid_file)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        folder = Path(parent.stdout.readline().strip())
        child = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout_s=30))
        assert alive(child) and folder.is_dir() and folder.name.startswith(f"{parent.pid}-")
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: not alive(child), timeout_s=5)
        # The dead worker's job folder stays behind until a worker starts and clears it.
        assert folder.is_dir()
        assert folder in remove_dead_workers_job_folders(folder.parent)
        assert not folder.exists()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


async def test_job_folders_live_in_this_processs_own_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(child_process.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(child_process, "_own_jobs_folder", None)
    seen: list[Path] = []
    original = child_process.tempfile.TemporaryDirectory

    def spy(*args, **kwargs):
        folder = original(*args, **kwargs)
        seen.append(Path(folder.name))
        return folder

    monkeypatch.setattr(child_process.tempfile, "TemporaryDirectory", spy)
    await ChildJobRunner().run(JOB, "echo", Probe(x=1), timeout_s=60)
    own = own_jobs_folder()
    assert own.parent == child_process.jobs_root() and own.parent.parent == tmp_path
    assert own.name.startswith(f"{os.getpid()}-")
    assert [path.parent for path in seen] == [own] and not seen[0].exists()


def test_only_folders_of_dead_processes_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(child_process, "_own_jobs_folder", None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        root = tmp_path / "prodgraph-jobs"
        folders = {
            "dead": root / f"{dead.pid}-aaaa",
            "live": root / f"{live.pid}-bbbb",
            "earlier_me": root / f"{os.getpid()}-cccc",  # a process before this one had this pid
            "foreign": root / "not-a-worker",
        }
        for folder in folders.values():
            (folder / "step_job-x").mkdir(parents=True)
        removed = remove_dead_workers_job_folders(root)
        assert sorted(removed) == sorted([folders["dead"], folders["earlier_me"]])
        assert folders["live"].is_dir() and folders["foreign"].is_dir()
    finally:
        live.kill()
        live.wait()


def test_stale_scratch_folders_are_removed_and_fresh_ones_kept(tmp_path):
    store = LocalArtifactStore(tmp_path / "store")
    with store.scratch_file("model.glb") as fresh:
        fresh.write_bytes(b"in use")
        stale = store.scratch_root / "tmp-left-by-a-killed-worker"
        stale.mkdir()
        (stale / "model.glb").write_bytes(b"half")
        old = time.time() - 3 * 86400
        for path in (stale / "model.glb", stale):
            os.utime(path, (old, old))
        assert store.remove_stale_scratch(older_than_s=2 * 86400) == [stale]
        assert fresh.exists() and not stale.exists()
