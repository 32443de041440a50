"""Wait until Temporal lists a test's in-process workers as pollers, as preflight asks it."""

from __future__ import annotations

import asyncio

from core.temporal import TemporalSession
from prodgraph.preflight import QueueNeed, live_pollers

EVERY_QUEUE = (
    QueueNeed("default", "workflow", ()),
    QueueNeed("default", "activity", ()),
    QueueNeed("cad", "activity", ()),
    QueueNeed("render", "activity", ()),
)


async def until_polled(session: TemporalSession, limit_s: float = 10.0) -> None:
    """Return once every queue of the session has a live poller.

    In-process workers poll only while the test's event loop runs them, and a TestClient call
    blocks that loop: a test that launches through the API waits here first, or the launch's
    preflight finds no workers.
    """
    counts: list[int] = []
    for _ in range(int(limit_s / 0.1)):
        counts = list(await asyncio.gather(*(live_pollers(session, need) for need in EVERY_QUEUE)))
        if all(counts):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the in-process workers never polled every queue: {counts}")
