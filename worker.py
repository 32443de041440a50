"""Composition root of a worker: which task queues, which workflows and activities."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.artifacts import LocalArtifactStore
from activities.cad import CadActivities
from activities.child_process import ChildJobRunner
from activities.materials import MaterialActivities
from activities.module import module_spec
from activities.output import OutputActivities
from activities.render import RenderActivities
from prodgraph.settings import Settings, get_settings
from registry.catalog import default_catalog
from workflows.graph import GraphWorkflow
from workflows.legacy import LegacyPipelineWorkflow
from workflows.order_line import OrderLineWorkflow

WORKFLOWS = [GraphWorkflow, LegacyPipelineWorkflow, OrderLineWorkflow]
QUEUES = ("default", "cad", "render")


def activity_implementations(settings: Settings) -> list[Callable]:
    """Every catalogue module, bound to this process's store and job runner."""
    store = LocalArtifactStore(settings.artifact_root())
    jobs = ChildJobRunner(memory_limit_mb=settings.job_memory_limit_mb)
    instances = [CadActivities(store, jobs), MaterialActivities(), RenderActivities(store, jobs),
                 OutputActivities(store, settings.publish_root())]
    bound = {module_spec(method).key: method for instance in instances
             for method in _module_methods(instance)}
    return [bound[key] for key in default_catalog().specs]


def build_workers(client: Client, settings: Settings, queues: tuple[str, ...] = QUEUES) -> list:
    """One Worker per logical queue; workflows poll the default queue."""
    activities = activity_implementations(settings)
    concurrency = {"default": 20, "cad": settings.cad_concurrency,
                   "render": settings.render_concurrency}
    workers = []
    for queue in queues:
        on_queue = [fn for fn in activities if module_spec(fn).task_queue == queue]
        workers.append(Worker(
            client, task_queue=settings.queue_for(queue), activities=on_queue,
            workflows=WORKFLOWS if queue == "default" else [],
            max_concurrent_activities=concurrency[queue]))
    return workers


async def connect(address: str, settings: Settings) -> Client:
    """A client that speaks pydantic."""
    return await Client.connect(address, namespace=settings.temporal_namespace,
                                data_converter=pydantic_data_converter)


def _module_methods(instance: object) -> list[Callable]:
    return [getattr(instance, name) for name in dir(type(instance))
            if hasattr(getattr(type(instance), name), "__prodgraph_module__")]


async def _serve(queues: tuple[str, ...]) -> None:
    settings = get_settings()
    if not settings.temporal_address:
        raise SystemExit("set PRODGRAPH_TEMPORAL_ADDRESS to the Temporal frontend (host:port)")
    client = await connect(settings.temporal_address, settings)
    workers = build_workers(client, settings, queues)
    await asyncio.gather(*(worker.run() for worker in workers))


def main() -> None:
    """`python worker.py --queues default,cad,render`."""
    parser = argparse.ArgumentParser(description="Run prodgraph workers against a Temporal server")
    parser.add_argument("--queues", default=",".join(QUEUES),
                        help="comma-separated logical queues: default, cad, render")
    queues = tuple(queue.strip() for queue in parser.parse_args().queues.split(","))
    unknown = set(queues) - set(QUEUES)
    if unknown:
        raise SystemExit(f"unknown queue(s): {', '.join(sorted(unknown))}")
    try:
        asyncio.run(_serve(queues))
    except KeyboardInterrupt:
        pass
    os._exit(0)  # temporalio can crash at interpreter exit (known upstream)


if __name__ == "__main__":
    main()
