"""Workers: every catalogue module bound to this process's store and job runner, per task queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.artifacts import LocalArtifactStore
from activities.cad import CadActivities
from activities.child_process import ChildJobRunner
from activities.materials import MaterialActivities
from activities.module import SPEC_ATTRIBUTE, module_spec
from activities.output import OutputActivities
from activities.render import RenderActivities
from core.settings import Settings
from core.vocabulary import QUEUES, QueueName
from registry.catalog import default_catalog
from workflows.graph import GraphWorkflow
from workflows.legacy import LegacyPipelineWorkflow
from workflows.order_line import OrderLineWorkflow

WORKFLOWS = [GraphWorkflow, LegacyPipelineWorkflow, OrderLineWorkflow]
#: Light modules and workflow tasks are cheap; heavy queues take their limits from settings.
DEFAULT_QUEUE_CONCURRENCY = 20


def activity_implementations(
    settings: Settings, jobs: ChildJobRunner | None = None
) -> list[Callable[..., Any]]:
    """Every catalogue module, bound to this process's store and job runner."""
    store = LocalArtifactStore(settings.artifact_root())
    jobs = jobs or ChildJobRunner(memory_limit_mb=settings.job_memory_limit_mb)
    instances = [
        CadActivities(store, jobs),
        MaterialActivities(),
        RenderActivities(store, jobs),
        OutputActivities(store, settings.publish_root()),
    ]
    bound = {
        module_spec(method).key: method for instance in instances for method in _module_methods(instance)
    }
    return [bound[key] for key in default_catalog().specs]


def build_workers(
    client: Client,
    settings: Settings,
    queues: tuple[QueueName, ...] = QUEUES,
    jobs: ChildJobRunner | None = None,
) -> list[Worker]:
    """One Worker per logical queue; workflows poll the default queue."""
    activities = activity_implementations(settings, jobs)
    concurrency: dict[QueueName, int] = {
        "default": DEFAULT_QUEUE_CONCURRENCY,
        "cad": settings.cad_concurrency,
        "render": settings.render_concurrency,
    }
    return [
        Worker(
            client,
            task_queue=settings.queue_for(queue),
            activities=[fn for fn in activities if module_spec(fn).task_queue == queue],
            workflows=WORKFLOWS if queue == "default" else [],
            max_concurrent_activities=concurrency[queue],
        )
        for queue in queues
    ]


def _module_methods(instance: object) -> list[Callable[..., Any]]:
    return [
        getattr(instance, name)
        for name in dir(type(instance))
        if hasattr(getattr(type(instance), name), SPEC_ATTRIBUTE)
    ]
