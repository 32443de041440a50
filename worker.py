"""Composition root of a worker: `python worker.py --queues default,cad,render`."""

from __future__ import annotations

import argparse
import asyncio
import os

from core.settings import get_settings
from core.temporal import connect
from core.vocabulary import QUEUES, QueueName
from prodgraph.workers import build_workers


async def serve(queues: tuple[QueueName, ...]) -> None:
    """Poll the given logical queues of the configured Temporal server until stopped."""
    settings = get_settings()
    if not settings.temporal_address:
        raise SystemExit("set PRODGRAPH_TEMPORAL_ADDRESS to the Temporal frontend (host:port)")
    client = await connect(settings.temporal_address, settings)
    workers = build_workers(client, settings, queues)
    await asyncio.gather(*(worker.run() for worker in workers))


def parse_queues(text: str) -> tuple[QueueName, ...]:
    """Logical queue names from a comma-separated list, each checked."""
    names = [name.strip() for name in text.split(",")]
    unknown = sorted(set(names) - set(QUEUES))
    if unknown:
        raise SystemExit(f"unknown queue(s): {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    return tuple(name for name in QUEUES if name in names)


def main() -> None:
    """Parse the queues, then serve them."""
    parser = argparse.ArgumentParser(description="Run prodgraph workers against a Temporal server")
    parser.add_argument(
        "--queues", default=",".join(QUEUES), help=f"comma-separated logical queues: {', '.join(QUEUES)}"
    )
    queues = parse_queues(parser.parse_args().queues)
    try:
        asyncio.run(serve(queues))
    except KeyboardInterrupt:
        pass
    os._exit(0)  # temporalio can crash at interpreter exit (known upstream)


if __name__ == "__main__":
    main()
