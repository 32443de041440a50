"""Workers: every catalogue module bound to this process's store and job runner, per task queue."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.artifacts import LocalArtifactStore
from activities.cad import CadActivities
from activities.child_process import ChildJobRunner, remove_dead_workers_job_folders
from activities.materials import MaterialActivities
from activities.module import SPEC_ATTRIBUTE, module_spec
from activities.output import OutputActivities
from activities.parity import ParityActivities
from activities.render import RenderActivities
from core.settings import Settings
from core.vocabulary import QUEUES, QueueName
from persistence.engine import make_engine
from prodgraph.parity import ParityRecorder, configured_thresholds
from registry.catalog import SERVICE_MODULES, default_catalog
from workflows.graph import GraphWorkflow
from workflows.legacy import LegacyPipelineWorkflow
from workflows.order_line import OrderLineWorkflow
from workflows.parity import ParityCalibrationWorkflow

WORKFLOWS = [GraphWorkflow, LegacyPipelineWorkflow, OrderLineWorkflow, ParityCalibrationWorkflow]
#: Light modules and workflow tasks are cheap; heavy queues take their limits from settings.
DEFAULT_QUEUE_CONCURRENCY = 20
HEARTBEAT_THROTTLE = timedelta(seconds=2)
#: A scratch folder untouched this long belongs to no live job: no node may run longer than a
#: day (a definition's timeout_s is at most 86400), so two days leave a wide margin.
STALE_SCRATCH_AFTER_S = 2 * 86400.0

logger = logging.getLogger(__name__)


def activity_implementations(
    settings: Settings, jobs: ChildJobRunner | None = None
) -> list[Callable[..., Any]]:
    """Every catalogue module and service module, bound to this process's store and job runner."""
    store = LocalArtifactStore(settings.artifact_root())
    jobs = jobs or ChildJobRunner(memory_limit_mb=settings.job_memory_limit_mb)
    instances = [
        CadActivities(store, jobs, settings.input_folders()),
        MaterialActivities(),
        RenderActivities(store, jobs),
        OutputActivities(store, settings.publish_root()),
        ParityActivities(store, jobs),
    ]
    bound = {
        module_spec(method).key: method for instance in instances for method in _module_methods(instance)
    }
    service = [module_spec(fn).key for fn in SERVICE_MODULES]
    return [bound[key] for key in (*default_catalog().specs, *service)]


def build_workers(
    client: Client,
    settings: Settings,
    queues: tuple[QueueName, ...] = QUEUES,
    jobs: ChildJobRunner | None = None,
    shutdown_grace_s: float | None = None,
) -> list[Worker]:
    """One Worker per logical queue; workflows poll the default queue.

    On shutdown each worker stops polling, gives in-flight activities shutdown_grace_s
    (settings.worker_shutdown_grace_s by default; 0 for in-process workers that should stop at
    once) to finish, then cancels them, which kills their child jobs.
    """
    remove_leftovers(settings)
    grace = timedelta(
        seconds=settings.worker_shutdown_grace_s if shutdown_grace_s is None else shutdown_grace_s
    )
    activities = activity_implementations(settings, jobs)
    configured_thresholds(settings)  # a misconfigured deployment stops here, not at its first shadow
    # Shadow runs record their comparison for the rollout gate, through the database.
    recorder = ParityRecorder(make_engine(settings))
    concurrency: dict[QueueName, int] = {
        "default": DEFAULT_QUEUE_CONCURRENCY,
        "cad": settings.cad_concurrency,
        "render": settings.render_concurrency,
    }
    return [
        Worker(
            client,
            task_queue=settings.queue_for(queue),
            activities=[fn for fn in activities if module_spec(fn).task_queue == queue]
            + ([recorder.record, recorder.store_calibration] if queue == "default" else []),
            workflows=WORKFLOWS if queue == "default" else [],
            max_concurrent_activities=concurrency[queue],
            graceful_shutdown_timeout=grace,
            # A cancellation (fail_run, abort) reaches a heartbeating job within seconds.
            max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        )
        for queue in queues
    ]


def remove_leftovers(settings: Settings) -> None:
    """Remove what killed workers left behind: job folders of dead worker processes on this
    host, and stale scratch folders in the artifact store."""
    removed = remove_dead_workers_job_folders()
    store = LocalArtifactStore(settings.artifact_root())
    removed += store.remove_stale_scratch(STALE_SCRATCH_AFTER_S)
    removed += store.remove_stale_partials(STALE_SCRATCH_AFTER_S)
    if removed:
        logger.info("removed %d folder(s) left by killed workers: %s", len(removed), removed)


def _module_methods(instance: object) -> list[Callable[..., Any]]:
    return [
        getattr(instance, name)
        for name in dir(type(instance))
        if hasattr(getattr(type(instance), name), SPEC_ATTRIBUTE)
    ]
