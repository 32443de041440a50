"""A child job that misbehaves on request: crash, hang, hog memory, or fail typed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

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


def killed(request: Probe) -> dict:
    """Die of SIGKILL, as the kernel's OOM killer or a host stopping the process would do it."""
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def abort(request: Probe) -> dict:
    """Die of SIGABRT, as a failed assertion in native code does."""
    os.abort()


def quit_silently(request: Probe) -> dict:
    """Exit non-zero without writing a response."""
    os._exit(7)


def hang(request: Probe) -> dict:
    """Never finish."""
    time.sleep(3600)
    return {}


def pid_then_hang(request: Probe) -> dict:
    """Write this process's pid to the file `name` names, then never finish."""
    Path(request.name).write_text(str(os.getpid()))
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
                ("killed", killed),
                ("abort", abort),
                ("quit_silently", quit_silently),
                ("hang", hang),
                ("pid_then_hang", pid_then_hang),
                ("hog", hog),
                ("refuse", refuse),
                ("echo", echo),
            )
        }
    )
