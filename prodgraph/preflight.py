"""Preflight: what must hold before an order line starts, each check answering pass, warn or fail.

The checks, in the order they are answered:

- `cad_file`: the caller's uploaded CAD file exists and its intake completed or can start.
- `output_type`: the output type exists, is active and is sold for the order's product category.
- `workflow`: the output type's workflow is valid against the current catalogue, and the order
  line dispatches and compiles with its invocation parameters.
- `materials`: the output type's material constraints can be met (see check_materials).
- `workers`: workers poll every task queue the plan needs, as Temporal reports its pollers.
- `render_budget`: no render of the plan exceeds the deployment's budget of pixels × samples × frames.

A failed check blocks a launch; a warning does not. A check whose input another check could not
provide (no output type, no plan) answers warn, "not checked", so each failure is reported once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr
from sqlmodel import Session
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.materials import LIBRARY, AutoPopulateParams, ResolveMapParams
from core.errors import DispatchError, NotFoundError, PreflightFailedError, ProdgraphError
from core.settings import get_settings
from core.temporal import TemporalSession
from core.vocabulary import QueueName
from output_profiles.dispatch import plan_dispatch
from output_profiles.dispatch_plan import DispatchPlan
from persistence.repositories import find_output_type, workflow_for
from persistence.tables import CadFileRecord, OutputType
from prodgraph.cad_files import find_own_file
from prodgraph.parity import with_calibration
from prodgraph.runs import failure_code, failure_details
from registry.catalog import Catalog
from registry.compiler import render_gigasamples
from registry.definition import WorkflowDefinition
from registry.plan import ModuleCall
from registry.validation import validate_definition

CheckStatus = Literal["pass", "warn", "fail"]
TaskKind = Literal["workflow", "activity"]
#: A poller seen this recently is a live worker: an idle worker long-polls, and Temporal's long
#: polls last about a minute, so a live one is never seen longer ago than that.
POLLER_FRESH = timedelta(seconds=120)
RENDER_BUDGET_CODE = "render_budget_exceeded"
MATERIAL_MODULES = ("materials.auto_populate", "materials.resolve_map")


class Check(BaseModel):
    """One preflight check's answer."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str
    """cad_file, output_type, workflow, materials, workers or render_budget."""
    status: CheckStatus
    """fail blocks a launch; warn does not."""
    reason: str
    """What was found, in words."""
    _problems: list[dict[str, Any]] = PrivateAttr(default_factory=list)


class PreflightReport(BaseModel):
    """Every check of one order line; ok when none failed."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    ok: bool
    """No check failed (warnings allowed)."""
    checks: list[Check]

    def raise_if_failed(self) -> None:
        """PreflightFailedError (422 preflight_failed, with every check) when a check failed."""
        failed = [check for check in self.checks if check.status == "fail"]
        if not failed:
            return
        problems = [problem for check in failed for problem in check._problems]
        raise PreflightFailedError(
            "preflight failed: " + "; ".join(f"{check.name}: {check.reason}" for check in failed),
            checks=[check.model_dump() for check in self.checks],
            problems=problems or None,
        )


def check(name: str, status: CheckStatus, reason: str, problems: list[dict[str, Any]] | None = None) -> Check:
    """A check's answer, with the problems a failure carries into the launch's 422."""
    answer = Check(name=name, status=status, reason=reason)
    answer._problems = problems or []
    return answer


@dataclass(frozen=True)
class PlannedOrderLine:
    """What the database and the dispatch say about an order line, before anything runs."""

    output_type_slug: str
    output_type: OutputType | None
    workflow: WorkflowDefinition | None
    plan: DispatchPlan | None
    """The dispatch plan, when the order line dispatches and compiles."""
    error: ProdgraphError | None
    """Why it does not, otherwise."""
    cad_file_id: str | None
    cad_file: CadFileRecord | None
    """The caller's CAD file of that id, if there is one."""

    def require_output_type(self) -> OutputType:
        """The output type, or NotFoundError (a launch naming none is a 404, as before preflight)."""
        if self.output_type is None:
            raise NotFoundError(f"output type {self.output_type_slug!r} does not exist", field="output_type")
        return self.output_type

    def require_cad_file(self) -> CadFileRecord:
        """The caller's CAD file, or NotFoundError (another owner's is as unknown as a missing one)."""
        if self.cad_file is None:
            raise NotFoundError(f"no CAD file {self.cad_file_id!r}", field="cad_file_id")
        return self.cad_file

    def require_plan(self) -> DispatchPlan:
        """The dispatch plan of an order line that passed preflight."""
        if self.plan is None:
            raise self.error or DispatchError("the order line did not dispatch")
        return self.plan


def plan_order_line(
    db: Session,
    catalog: Catalog,
    output_type_slug: str,
    invocation_params: dict[str, Any],
    cad_file_id: str | None,
    owner: str,
) -> PlannedOrderLine:
    """Look up the output type, its workflow and the CAD file, and dispatch (synchronous: run it
    off the event loop). A dispatch refusal is kept, not raised: the checks report it."""
    output_type = find_output_type(db, output_type_slug)
    workflow = workflow_for(db, output_type) if output_type else None
    plan, error = None, None
    if output_type is not None:
        try:
            plan = with_calibration(
                db, plan_dispatch(output_type, workflow, catalog, invocation_params), output_type.slug
            )
        except ProdgraphError as refused:
            error = refused
    return PlannedOrderLine(
        output_type_slug=output_type_slug,
        output_type=output_type,
        workflow=workflow,
        plan=plan,
        error=error,
        cad_file_id=cad_file_id,
        cad_file=find_own_file(db, owner, cad_file_id),
    )


async def run_preflight(
    temporal: TemporalSession,
    catalog: Catalog,
    planned: PlannedOrderLine,
    product_category: str | None,
    owner: str,
) -> PreflightReport:
    """Every check of one order line; the two that ask Temporal run concurrently."""
    cad_file, workers = await asyncio.gather(
        check_cad_file(temporal.client, planned.cad_file_id, planned.cad_file, owner),
        check_workers(temporal, planned.plan),
    )
    constraints = planned.output_type.material_constraints if planned.output_type else None
    checks = [
        cad_file,
        check_output_type(planned.output_type_slug, planned.output_type, product_category),
        check_workflow(planned.output_type, planned.workflow, catalog, planned.plan, planned.error),
        check_materials(constraints, material_calls(planned.plan) if planned.plan else None),
        workers,
        check_render_budget(planned.plan, planned.error, get_settings().render_budget_gigasamples),
    ]
    return PreflightReport(ok=all(answer.status != "fail" for answer in checks), checks=checks)


# --- the checks -------------------------------------------------------------------------------


async def check_cad_file(
    client: Client, cad_file_id: str | None, record: CadFileRecord | None, owner: str
) -> Check:
    """The caller's CAD file is known and its intake completed (pass), runs (warn), has not
    started (warn: it will), or failed (fail, with its error).

    Args:
        client: the Temporal client its intake workflow runs on.
        cad_file_id: the id the order names; None while an order names a server path instead.
        record: the stored file of that id, if any.
        owner: the caller; a file of another owner is unknown to it.
    """
    if cad_file_id is None:
        return check("cad_file", "warn", "the order names no uploaded CAD file; not checked")
    if record is None or record.owner != owner:
        return check(
            "cad_file",
            "fail",
            f"CAD file {cad_file_id!r} is unknown",
            [{"code": "unknown_cad_file", "node_id": None, "path": "cad_file_id", "message": "unknown"}],
        )
    if record.intake_workflow_id is None:
        return check("cad_file", "warn", "its intake has not started; it will start with the order")
    handle = client.get_workflow_handle(record.intake_workflow_id)
    try:
        status = (await handle.describe()).status
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            return check("cad_file", "fail", f"Temporal could not describe its intake: {error.message}")
        return check("cad_file", "warn", "its intake has not started; it will start with the order")
    if status == WorkflowExecutionStatus.COMPLETED:
        return check("cad_file", "pass", f"intake {handle.id} completed")
    if status in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW):
        return check("cad_file", "warn", f"intake {handle.id} is running; the order waits for it")
    reason = (
        await _intake_failure(handle) if status == WorkflowExecutionStatus.FAILED else status.name.lower()
    )
    return check("cad_file", "fail", f"intake {handle.id} failed: {reason}")


async def _intake_failure(handle: WorkflowHandle[Any, Any]) -> str:
    """A failed intake's error, as its failure carries it: `code: message` (at node)."""
    try:
        await handle.result()
    except WorkflowFailureError as failed:
        details = failure_details(failed) or {}
        error = details.get("error")
        if isinstance(error, dict) and error.get("code"):
            where = f" at node {error['node_id']}" if error.get("node_id") else ""
            return f"{error['code']}: {error.get('message', '')}{where}"
        return f"{failure_code(failed)}: {failed.cause or failed}"
    return "failed"


def check_output_type(slug: str, output_type: OutputType | None, product_category: str | None) -> Check:
    """The output type exists, is active, and is sold for the order's product category (an empty
    category list sells it for all; an order naming no category is a warning where it matters)."""
    if output_type is None:
        return check("output_type", "fail", f"output type {slug!r} does not exist")
    if not output_type.is_active:
        return check("output_type", "fail", f"output type {slug!r} is not active")
    if not output_type.categories:
        return check("output_type", "pass", f"{slug!r} is active and sold for every product category")
    sold = ", ".join(output_type.categories)
    if product_category is None:
        return check(
            "output_type", "warn", f"{slug!r} is sold for {sold}; the order names no product category"
        )
    if product_category not in output_type.categories:
        return check(
            "output_type",
            "fail",
            f"{slug!r} is not sold for product category {product_category!r}, only for {sold}",
            [{"code": "category_not_allowed", "node_id": None, "path": "product_category", "message": sold}],
        )
    return check("output_type", "pass", f"{slug!r} is active and sold for {product_category!r}")


def check_workflow(
    output_type: OutputType | None,
    workflow: WorkflowDefinition | None,
    catalog: Catalog,
    plan: DispatchPlan | None,
    error: ProdgraphError | None,
) -> Check:
    """The linked workflow validates against the current catalogue, and the order line dispatches
    and compiles (a render over budget is render_budget's failure, an inactive type output_type's)."""
    if output_type is None:
        return check("workflow", "warn", "not checked: no output type")
    if output_type.workflow_id and workflow is not None:
        report = validate_definition(workflow, catalog)
        if not report.valid:
            first = report.errors[0]
            return check(
                "workflow",
                "fail",
                f"workflow {workflow.id!r} v{workflow.version} is invalid against catalogue "
                f"{catalog.version}: {first.code} at {first.node_id}: {first.message}",
                [problem.model_dump() for problem in report.errors],
            )
    if isinstance(error, DispatchError) and error.field == "is_active":
        return check("workflow", "warn", "not checked: the output type is not active")
    if error is not None and not _is_budget(error):
        return check("workflow", "fail", error.message, error.problems or [_problem(error)])
    if plan is None:
        return check(
            "workflow", "pass", "the workflow is valid; its render is over budget (see render_budget)"
        )
    if plan.graph_plan is not None:
        graph = plan.graph_plan
        return check(
            "workflow",
            "pass",
            f"workflow {graph.workflow_id!r} v{graph.workflow_version} is valid against catalogue "
            f"{catalog.version} and compiles ({len(graph.nodes)} nodes)",
        )
    return check("workflow", "pass", "the legacy pipeline runs it; its parameters compile")


def plan_calls(plan: DispatchPlan) -> list[ModuleCall]:
    """The order line's own module calls: its graph's nodes, or the legacy chain's calls."""
    if plan.graph_plan is not None:
        return list(plan.graph_plan.nodes)
    return list(plan.legacy_plan.steps.values()) if plan.legacy_plan else []


def material_calls(plan: DispatchPlan) -> list[tuple[str, dict[str, Any]]]:
    """(module key, effective params) of the plan's material modules."""
    return [
        (call.module_key, call.params) for call in plan_calls(plan) if call.module_key in MATERIAL_MODULES
    ]


def check_materials(constraints: list[str] | None, calls: list[tuple[str, dict[str, Any]]] | None) -> Check:
    """The material constraints can be met: every part is sure to get a constrained material.

    "Can be met" means: every constraint names a library material, and the plan's material
    modules, with their effective parameters, can assign no other material. A material_override
    inside the constraints covers every part. Without one, parts take their automatic material:
    the fallback_material must be inside the constraints, and part_materials too; parts with a
    CAD colour keep that colour when use_cad_colors is on, which no constraint names, so that is
    a warning (a file whose parts carry no colour still meets them). No constraints: any material.

    Args:
        constraints: the output type's material_constraints (None: no output type).
        calls: (module key, effective params) of the plan's material modules (None: no plan).
    """
    if constraints is None:
        return check("materials", "warn", "not checked: no output type")
    unknown = [key for key in constraints if key not in LIBRARY]
    if unknown:
        return check("materials", "fail", f"not in the material library: {', '.join(unknown)}")
    if not constraints:
        return check("materials", "pass", "no material constraints: any material")
    allowed = ", ".join(constraints)
    if calls is None:
        return check("materials", "warn", "not checked: the order line did not compile")
    resolves = [
        ResolveMapParams.model_validate(params) for key, params in calls if key == "materials.resolve_map"
    ]
    autos = [
        AutoPopulateParams.model_validate(params) for key, params in calls if key == "materials.auto_populate"
    ]
    if not resolves and not autos:
        return check(
            "materials", "fail", f"the workflow assigns no materials, so none is sure to be {allowed}"
        )
    outside = [
        f"{name} {value!r}"
        for params in resolves
        for name, value in (
            ("material_override", params.material_override),
            *((f"part_materials.{part}", key) for part, key in params.part_materials.items()),
        )
        if value is not None and value not in constraints
    ]
    if outside:
        return check("materials", "fail", f"{', '.join(outside)} outside the constraints ({allowed})")
    if resolves and all(params.material_override for params in resolves):
        return check(
            "materials", "pass", f"material_override puts every part in {resolves[0].material_override}"
        )
    fallbacks = [params.fallback_material for params in autos if params.fallback_material not in constraints]
    if fallbacks:
        return check(
            "materials",
            "fail",
            f"parts without a colour get {fallbacks[0]!r}, outside the constraints ({allowed})",
        )
    if any(params.use_cad_colors for params in autos):
        return check(
            "materials",
            "warn",
            f"parts with a CAD colour keep it, outside the constraints ({allowed}); set material_override "
            "or turn use_cad_colors off to be sure",
        )
    return check("materials", "pass", f"every part gets a material among {allowed}")


@dataclass(frozen=True)
class QueueNeed:
    """A task queue the plan needs polled, for workflow or activity tasks, and who needs it."""

    queue: QueueName
    kind: TaskKind
    needed_by: tuple[str, ...]


def needed_queues(plan: DispatchPlan) -> list[QueueNeed]:
    """The queues a dispatch plan needs polled: the default queue's workflow tasks (the order-line
    parent, its graph or legacy children, and the local activities those run in their own worker),
    and the activity tasks of each queue a module runs on (local modules need none)."""
    calls: list[ModuleCall] = []
    for graph in (plan.intake_plan, plan.graph_plan):
        calls += [node for node in graph.nodes if not node.local] if graph else []
    calls += list(plan.legacy_plan.steps.values()) if plan.legacy_plan else []
    by_queue: dict[QueueName, list[str]] = {}
    for call in calls:
        by_queue.setdefault(call.task_queue, [])
        if call.module_key not in by_queue[call.task_queue]:
            by_queue[call.task_queue].append(call.module_key)
    needs = [QueueNeed("default", "workflow", ("the order line's workflows",))]
    return needs + [QueueNeed(queue, "activity", tuple(keys)) for queue, keys in sorted(by_queue.items())]


async def check_workers(temporal: TemporalSession, plan: DispatchPlan | None) -> Check:
    """Workers poll every task queue the plan needs, as Temporal sees them now.

    No live poller on a needed queue fails: the run would start and wait without progress or
    error until a worker comes, and an order system cannot tell that from a slow render.
    """
    if plan is None:
        return check("workers", "warn", "not checked: the order line did not compile")
    needs = needed_queues(plan)
    try:
        polled = await asyncio.gather(*(live_pollers(temporal, need) for need in needs))
    except RPCError as error:
        return check("workers", "fail", f"Temporal could not describe the task queues: {error.message}")
    missing = [need for need, count in zip(needs, polled, strict=True) if count == 0]
    if missing:
        reason = "; ".join(
            f"no worker polls {temporal.settings.queue_for(need.queue)!r} for {need.kind} tasks "
            f"({', '.join(need.needed_by)})"
            for need in missing
        )
        return check("workers", "fail", reason)
    polled_names = ", ".join(f"{temporal.settings.queue_for(need.queue)} ({need.kind})" for need in needs)
    return check("workers", "pass", f"workers poll {polled_names}")


#: A queue seen polled is taken as polled this long without asking again: launches under load
#: would otherwise ask Temporal the same question several times each (a poller counts as live for
#: two minutes anyway). A queue seen without pollers is asked again every time.
POLLED_CACHE_S = 5.0
_polled: dict[tuple[str, str, str], tuple[float, int]] = {}


async def live_pollers(temporal: TemporalSession, need: QueueNeed) -> int:
    """How many workers Temporal has seen polling this queue for this kind of task lately."""
    queue = temporal.settings.queue_for(need.queue)
    key = (temporal.settings.temporal_namespace, queue, need.kind)
    seen = _polled.get(key)
    if seen is not None and time.monotonic() - seen[0] < POLLED_CACHE_S:
        return seen[1]
    count = await _ask_pollers(temporal, queue, need.kind)
    if count:
        _polled[key] = (time.monotonic(), count)
    return count


async def _ask_pollers(temporal: TemporalSession, queue: str, kind_name: str) -> int:
    kind = (
        TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        if kind_name == "workflow"
        else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
    )
    answer = await temporal.client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=temporal.settings.temporal_namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=kind,
        )
    )
    since = datetime.now(UTC) - POLLER_FRESH
    return sum(1 for poller in answer.pollers if poller.last_access_time.ToDatetime(tzinfo=UTC) >= since)


def check_render_budget(plan: DispatchPlan | None, error: ProdgraphError | None, budget: float) -> Check:
    """No render of the plan is over the budget of width × height × samples × frames."""
    if error is not None and _is_budget(error):
        return check("render_budget", "fail", error.message, error.problems)
    if plan is None:
        return check("render_budget", "warn", "not checked: the order line did not compile")
    costs = [
        (cost, call.module_key)
        for call in plan_calls(plan)
        if (cost := render_gigasamples(call.params)) is not None
    ]
    if not costs:
        return check("render_budget", "pass", "the plan renders nothing")
    cost, key = max(costs)
    return check("render_budget", "pass", f"largest render {key}: {cost:.2f} of {budget:g} gigasamples")


def _is_budget(error: ProdgraphError) -> bool:
    return any(problem.get("code") == RENDER_BUDGET_CODE for problem in error.problems or [])


def _problem(error: ProdgraphError) -> dict[str, Any]:
    return {"code": error.code, "node_id": error.node_id, "path": error.field, "message": error.message}
