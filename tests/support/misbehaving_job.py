"""A child job that misbehaves on request: crash, hang, hog memory, or fail typed."""

from __future__ import annotations

import os
import signal
import time

from pydantic import BaseModel, ConfigDict

from activities.jobs.protocol import run_job
from core.errors import InvalidCadFileError


class Probe(BaseModel):
    """What a test asks of the misbehaving job."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    x: int | None = None


def crash(request: Probe) -> dict:
    """Die of SIGSEGV, as OCCT does on some damaged files."""
    os.kill(os.getpid(), signal.SIGSEGV)
    return {}


def hang(request: Probe) -> dict:
    """Never finish."""
    time.sleep(3600)
    return {}


def hog(request: Probe) -> dict:
    """Allocate far more than the memory limit allows."""
    blocks = [bytearray(256 * 1024 * 1024) for _ in range(64)]
    return {"blocks": len(blocks)}


def refuse(request: Probe) -> dict:
    """Fail the expected way."""
    raise InvalidCadFileError(f"cannot use {request.name}")


def echo(request: Probe) -> dict:
    """Succeed."""
    return {"echo": request.model_dump(exclude_defaults=True)}


if __name__ == "__main__":
    run_job(
        {
            op: (handler, Probe)
            for op, handler in (
                ("crash", crash),
                ("hang", hang),
                ("hog", hog),
                ("refuse", refuse),
                ("echo", echo),
            )
        }
    )
