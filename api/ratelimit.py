"""The invocation rate limit: a token bucket per API key, in this process's memory.

Routes that start work (launching an order line, uploading a CAD file) declare `rate_limited`
after their role check. Each key may send PRODGRAPH_INVOCATION_BURST invocations at once and
regains PRODGRAPH_INVOCATION_RATE_PER_S a second; beyond that the answer is 429 `rate_limited`
with `Retry-After`. With several API replicas each one counts on its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request

from api.auth import CallerDep
from api.errors import EdgeError, ErrorResponse

#: OpenAPI documentation of the 429 answer, for the routes that declare `rate_limited`.
RATE_LIMITED_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorResponse, "description": "over this key's invocation rate limit"}
}


class TokenBuckets:
    """One bucket of `burst` tokens per key, refilled at `rate_per_s`; a call takes one token."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take a token for this key: 0 when taken, else the seconds until one is there."""
        now = self._clock()
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate_per_s)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate_per_s


async def limit_invocations(request: Request, caller: CallerDep) -> None:
    """429 `rate_limited` when the caller's key is over its invocation rate."""
    buckets: TokenBuckets = request.app.state.invocation_buckets
    # Runs on the event loop, never in a thread, so take() needs no lock.
    wait = buckets.take(caller.key_id or caller.owner)
    if wait > 0:
        raise EdgeError(
            429,
            "rate_limited",
            f"this key is over its invocation rate limit ({buckets.burst} at once, then "
            f"{buckets.rate_per_s:g} a second); retry after {math.ceil(wait)} s",
            field="Authorization",
            headers={"Retry-After": str(math.ceil(wait))},
        )


#: Declare in a route's `dependencies=[...]`, after its role check (with RATE_LIMITED_RESPONSES).
rate_limited = Depends(limit_invocations)
