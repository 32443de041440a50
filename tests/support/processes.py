"""Processes as /proc shows them: who runs which job, and whether a pid is still alive."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

PROC = Path("/proc")


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def parent_of(pid: int) -> int | None:
    """The parent pid of a process, None once it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rpartition(")")[2].split()[1])


def job_children(parent_pid: int, module: str) -> list[int]:
    """Live children of parent_pid running `python -m <module>` (e.g. activities.jobs.blender_job)."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if module.encode() in argv and parent_of(int(entry.name)) == parent_pid and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_for(probe: Callable[[], T], timeout_s: float, every_s: float = 0.05) -> T:
    """Poll until probe() is truthy and return it; fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:.0f}s waiting for {probe}")
        time.sleep(every_s)
    return value


async def until(probe: Callable[[], T], timeout_s: float, every_s: float = 0.05) -> T:
    """wait_for without blocking the event loop."""
    deadline = time.monotonic() + timeout_s
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:.0f}s waiting for {probe}")
        await asyncio.sleep(every_s)
    return value
