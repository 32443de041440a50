"""Composition root of a worker: `python worker.py --queues default,cad,render`.

SIGTERM (or SIGINT) stops polling, lets in-flight activities finish within
`PRODGRAPH_WORKER_SHUTDOWN_GRACE_S`, then cancels the rest (their child jobs are killed) and
exits 0. A second signal exits at once; the child jobs die with the process either way.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import traceback

from activities.child_process import remove_own_jobs_folder
from core.settings import get_settings
from core.temporal import connect
from core.vocabulary import QUEUES, QueueName
from prodgraph.workers import build_workers

logger = logging.getLogger("prodgraph.worker")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def serve(queues: tuple[QueueName, ...]) -> None:
    """Poll the given logical queues of the configured Temporal server until a stop signal."""
    settings = get_settings()
    if not settings.temporal_address:
        raise SystemExit("set PRODGRAPH_TEMPORAL_ADDRESS to the Temporal frontend (host:port)")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
            _flush_and_exit(128 + signum)
        logger.info(
            "%s: stopping; in-flight activities have %.0fs to finish",
            signal.Signals(signum).name,
            settings.worker_shutdown_grace_s,
        )
        stop.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    client = await connect(settings.temporal_address, settings)
    workers = build_workers(client, settings, queues)
    runs = [asyncio.create_task(worker.run()) for worker in workers]
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([stopping, *runs], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    # A signal, or a worker that failed: either way every worker shuts down before we return.
    await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
    await asyncio.gather(*runs)  # a worker's fatal error fails the process
    logger.info("stopped")


def parse_queues(text: str) -> tuple[QueueName, ...]:
    """Logical queue names from a comma-separated list, each checked."""
    names = [name.strip() for name in text.split(",")]
    unknown = sorted(set(names) - set(QUEUES))
    if unknown:
        raise SystemExit(f"unknown queue(s): {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    return tuple(name for name in QUEUES if name in names)


def main() -> None:
    """Parse the queues, serve them until a stop signal, exit 0 after a graceful stop."""
    parser = argparse.ArgumentParser(description="Run prodgraph workers against a Temporal server")
    parser.add_argument(
        "--queues", default=",".join(QUEUES), help=f"comma-separated logical queues: {', '.join(QUEUES)}"
    )
    queues = parse_queues(parser.parse_args().queues)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(queues))
    except KeyboardInterrupt:  # a Ctrl-C before the signal handlers were installed
        _flush_and_exit(0)
    except SystemExit as stop:
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
        _flush_and_exit(stop.code if isinstance(stop.code, int) else int(stop.code is not None))
    except BaseException:  # noqa: BLE001 - report, then exit without temporalio's exit-time crash
        traceback.print_exc()
        _flush_and_exit(1)
    _flush_and_exit(0)


def _flush_and_exit(code: int) -> None:
    remove_own_jobs_folder()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # temporalio can crash at interpreter exit (known upstream)


if __name__ == "__main__":
    main()
