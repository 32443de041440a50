"""The child-job runner: crashes, hangs and memory hogs fail typed, and nothing is left running."""

from __future__ import annotations

import time

import pytest

from activities.child_process import ChildJobRunner
from core.errors import ModuleError
from support.misbehaving_job import Probe

JOB = "tests.support.misbehaving_job"


async def test_a_result_comes_back():
    result = await ChildJobRunner().run(JOB, "echo", Probe(x=1), timeout_s=60)
    assert result == {"echo": {"x": 1}}


async def test_a_segfault_is_a_typed_failure_naming_the_signal():
    with pytest.raises(ModuleError) as failure:
        await ChildJobRunner().run(JOB, "crash", Probe(), timeout_s=60)
    assert failure.value.code == "job_crashed"
    assert "SIGSEGV" in failure.value.message


async def test_a_hang_is_killed_at_the_timeout():
    started = time.monotonic()
    with pytest.raises(ModuleError) as failure:
        await ChildJobRunner(heartbeat_every_s=0.2).run(JOB, "hang", Probe(), timeout_s=1)
    assert (failure.value.code, failure.value.retryable) == ("job_timeout", True)
    assert time.monotonic() - started < 10


async def test_the_memory_limit_stops_a_hog():
    with pytest.raises(ModuleError) as failure:
        await ChildJobRunner(memory_limit_mb=512).run(JOB, "hog", Probe(), timeout_s=60)
    assert failure.value.code in {"job_internal_error", "job_crashed"}
    assert "MemoryError" in failure.value.message or "SIG" in failure.value.message


async def test_a_typed_job_error_keeps_its_code_and_is_not_retryable():
    with pytest.raises(ModuleError) as failure:
        await ChildJobRunner().run(JOB, "refuse", Probe(name="x.step"), timeout_s=60)
    assert (failure.value.code, failure.value.retryable) == ("invalid_cad_file", False)
    assert "x.step" in failure.value.message


async def test_a_request_off_its_contract_is_refused_typed():
    with pytest.raises(ModuleError) as failure:
        await ChildJobRunner().run(JOB, "nonsense", Probe(), timeout_s=60)
    assert failure.value.code == "contract_violation"


async def test_a_request_that_does_not_fit_the_ops_model_is_a_contract_violation():
    class Other(Probe):
        surprise: str = "extra"

    with pytest.raises(ModuleError) as failure:
        await ChildJobRunner().run(JOB, "echo", Other(), timeout_s=60)
    assert failure.value.code == "contract_violation" and "surprise" in failure.value.message
