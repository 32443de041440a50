"""Whether a process still lives: the one check the job runner and the embedded server share."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while a process with this pid exists (a zombie still counts; see `reaped`)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def reaped(pid: int) -> bool:
    """Reap the pid if it is a finished child of this process; True if it was."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return finished != 0
