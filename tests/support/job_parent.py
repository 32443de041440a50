"""A stand-in worker: runs one hanging child job through ChildJobRunner until it is killed.

`python -m tests.support.job_parent PID_FILE` (from the repository root): the child writes its pid to
PID_FILE; this process prints its own job folder, then waits for the child forever.
"""

from __future__ import annotations

import asyncio
import sys

from activities.child_process import ChildJobRunner, own_jobs_folder
from tests.support.misbehaving_job import Probe


async def main(pid_file: str) -> None:
    print(own_jobs_folder(), flush=True)
    await ChildJobRunner().run("tests.support.misbehaving_job", "pid_then_hang", Probe(name=pid_file), 3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
