"""A child job that misbehaves on request: crash, hang, hog memory, or fail typed."""

from __future__ import annotations

import os
import signal
import time

from activities.jobs.protocol import JobError, run_job


def crash(request: dict) -> dict:
    """Die of SIGSEGV, as OCCT does on some damaged files."""
    os.kill(os.getpid(), signal.SIGSEGV)
    return {}


def hang(request: dict) -> dict:
    """Never finish."""
    time.sleep(3600)
    return {}


def hog(request: dict) -> dict:
    """Allocate far more than the memory limit allows."""
    blocks = [bytearray(256 * 1024 * 1024) for _ in range(64)]
    return {"blocks": len(blocks)}


def refuse(request: dict) -> dict:
    """Fail the expected way."""
    raise JobError("invalid_cad_file", f"cannot use {request['name']}")


def echo(request: dict) -> dict:
    """Succeed."""
    return {"echo": request}


if __name__ == "__main__":
    run_job({"crash": crash, "hang": hang, "hog": hog, "refuse": refuse, "echo": echo})
