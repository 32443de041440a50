"""A child job that writes its pid to a file and then hangs: proof that cancellation kills it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from activities.jobs.protocol import run_job


class PidFile(BaseModel):
    """Where the job writes its pid."""

    model_config = ConfigDict(extra="forbid")

    path: str


def hang(request: PidFile) -> dict:
    """Write the pid, then never finish."""
    Path(request.path).write_text(str(os.getpid()))
    time.sleep(3600)
    return {}


if __name__ == "__main__":
    run_job({"hang": (hang, PidFile)})
