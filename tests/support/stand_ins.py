"""Instant stand-ins under every production module's name, for orchestration tests on a real server.

They record calls and inputs, fail on demand (flaky, permanent), can be slow, and can hang in a real
child process (through ChildJobRunner) whose pid they record, so cancellation can be proven.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.child_process import ChildJobRunner
from support.pid_job import PidFile

REF = {"uri": "file:///x", "sha256": "a" * 64, "size": 1, "media_type": "application/octet-stream"}
OUTPUTS: dict[str, dict[str, Any]] = {
    "cad.resolve_step_path": {"step_file": {**REF, "role": "step_file"}, "source_name": "x.step"},
    "cad.extract_objects": {
        "objects": [{"name": "part", "path": "part", "kind": "part"}],
        "source_unit": "mm",
    },
    "cad.export_glb": {"glb": {**REF, "role": "glb"}, "node_names": ["part"]},
    "cad.compute_bbox": {"bbox": {"min": [0, 0, 0], "max": [1, 1, 1], "unit": "m"}},
    "materials.auto_populate": {"material_assignments": {}},
    "materials.resolve_map": {"material_map": {}},
    "render.resolve_template": {
        "render_template": {"name": "studio_grey", "background": "#bfc3c7", "light_strength": 1.0}
    },
    "render.blender_still": {"still": {**REF, "role": "still"}, "render_seconds": 0.1},
    "render.blender_turntable": {"turntable": {**REF, "role": "turntable"}, "render_seconds": 0.1},
    "render.export_blend": {"blend": {**REF, "role": "blend"}},
    "render.thumbnail": {"thumbnail": {**REF, "role": "thumbnail"}},
    "output.publish_asset": {"published": [], "manifest": {**REF, "role": "manifest"}},
    "output.notify": {"notification_id": "n-1"},
}


class StandIns:
    """Records calls and inputs; fails, waits or hangs in a child process on demand."""

    def __init__(
        self,
        fail: dict[str, int] | None = None,
        permanent: set[str] = frozenset(),
        slow: dict[str, float] | None = None,
        hang_in_child: set[str] = frozenset(),
        pid_dir: Path | None = None,
        fail_in_runs: set[str] = frozenset(),
    ):
        self.calls: Counter[str] = Counter()
        self.inputs: dict[str, list[dict[str, Any]]] = {}
        self.fail = dict(fail or {})
        self.permanent = permanent
        self.slow = dict(slow or {})
        self.hang_in_child = hang_in_child
        self.pid_dir = pid_dir
        self.fail_in_runs = fail_in_runs
        """Every module fails permanently in runs whose workflow id contains one of these."""
        self.started: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def pids(self) -> list[int]:
        """Pids of the child processes the hanging stand-ins started."""
        assert self.pid_dir is not None
        return [int(path.read_text()) for path in self.pid_dir.glob("*.pid") if path.read_text()]

    async def _call(self, key: str, input: dict[str, Any]) -> dict[str, Any]:
        """Take `slow` seconds, then fail, hang in a child, or return the module's output."""
        self.calls[key] += 1
        self.started.append(key)
        self.inputs.setdefault(key, []).append(input)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await _busy(self.slow.get(key, 0.05))
        finally:
            self.in_flight -= 1
        if key in self.permanent or any(part in activity.info().workflow_id for part in self.fail_in_runs):
            raise ApplicationError(f"{key} cannot go on", type="invalid_cad_file", non_retryable=True)
        if self.fail.get(key, 0) > 0:
            self.fail[key] -= 1
            raise ApplicationError(f"{key} flaked", type="flaky")
        if key in self.hang_in_child:
            assert self.pid_dir is not None
            pid_file = self.pid_dir / f"{key}-{self.calls[key]}.pid"
            job = "tests.support.pid_job"
            await ChildJobRunner(heartbeat_every_s=0.2).run(job, "hang", PidFile(path=str(pid_file)))
        return OUTPUTS[key]

    def activities(self) -> list[Any]:
        """One activity per production module, under its name."""
        return [self._activity(key) for key in OUTPUTS]

    def _activity(self, key: str) -> Any:
        @activity.defn(name=key)
        async def stand_in(input: dict) -> dict:
            return await self._call(key, input)

        return stand_in


async def _busy(seconds: float) -> None:
    """Work for a while, heartbeating as the real modules do, so a cancellation reaches it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        activity.heartbeat(f"busy, {left:.0f}s to go")
        await asyncio.sleep(min(left, 0.2))
