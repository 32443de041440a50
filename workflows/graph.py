"""The generic graph interpreter: one Temporal workflow that runs any compiled plan.

A run that fails is a failed execution (its failure's type is the failing node's error code,
its details the node states); operators repair a run through validated Updates.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    from core import temporal as attributes
    from core.errors import first_problem
    from core.temporal import temporal_retry
    from core.vocabulary import DELIVERABLE_ROLES, FailurePolicy
    from registry.catalog import default_catalog
    from registry.plan import ExecutionPlan, PlanNode

NodeStatus = Literal[
    "pending", "running", "retrying", "completed", "failed", "skipped", "awaiting_operator", "cancelled"
]
HEARTBEAT_TIMEOUT = timedelta(seconds=60)
#: Everything since operator Updates, per-attempt retries and failed executions; histories
#: recorded before it replay through the first interpreter.
OPERATOR_PATCH = "operator-updates-failed-executions"
#: Light modules (PlanNode.local) run as local activities; earlier histories ran them queued.
LOCAL_PATCH = "light-modules-local"
#: Order lines label their child runs with their owner, so a client sees only its own runs.
OWNER_PATCH = "runs-carry-their-owner"
SETTLED = ("completed", "skipped")
#: The ApplicationError type Temporal's SDK gives an activity cancelled by its worker's shutdown.
WORKER_SHUTDOWN = "WorkerShutdown"


class RunLabels(BaseModel):
    """What a run belongs to, for its search attributes."""

    model_config = ConfigDict(extra="forbid")

    order_line: str | None = None
    output_type: str | None = None
    route: Literal["legacy", "graph", "shadow"] | None = None
    owner: str | None = None
    """The API client the run works for (None for runs started from the CLI)."""


class GraphRunInput(BaseModel):
    """A pinned plan, the entry context, and the concrete task queues of this deployment."""

    model_config = ConfigDict(extra="forbid")

    plan: ExecutionPlan
    entry: dict[str, Any]
    task_queues: dict[str, str]
    """Logical queue (default, cad, render) → task queue name."""
    labels: RunLabels = RunLabels()
    sold_roles: list[str] | None = None
    """Artifact roles this run sells; a `continue` failure that loses none of them still
    completes. None: everything the run does is needed, so any failure fails it."""
    reuse: dict[str, dict[str, Any]] = {}
    """Outputs of nodes that completed in the run this one re-runs: they do not run again."""
    rerun_of: str | None = None
    """Workflow id of the run this one re-runs from its failure."""


class NodeError(BaseModel):
    """Why a node failed, in the words of the module."""

    code: str
    message: str
    node_id: str


class NodeState(BaseModel):
    """Progress of one node: status, attempts, last error, timings, effective params."""

    status: NodeStatus = "pending"
    attempts: int = 0
    error: NodeError | None = None
    params: dict[str, Any] = {}
    param_sources: dict[str, str] = {}
    timeout_s: float | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    reused: bool = False
    """Completed in the run this one re-runs; its output was taken over."""


class OperatorDecision(BaseModel):
    """What an operator wanted done with a failed node (the first interpreter's signal)."""

    node_id: str
    action: Literal["retry", "skip"]


class RetryNode(BaseModel):
    """Retry a node awaiting the operator, optionally with changed params or timeout."""

    model_config = ConfigDict(extra="forbid")

    node_id: str
    params: dict[str, Any] = {}
    """Changed parameters, for this retry only; recorded with provenance `operator`."""
    timeout_s: float | None = Field(None, gt=0, le=86400)
    """A changed timeout, for this retry only."""


class SkipNode(BaseModel):
    """Skip a node awaiting the operator; its output, if given, must fit its output contract."""

    model_config = ConfigDict(extra="forbid")

    node_id: str
    output: dict[str, Any] | None = None


class AbortRun(BaseModel):
    """Stop the run: running nodes are cancelled and the run fails as aborted."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class GraphRunResult(BaseModel):
    """Final state of every node and the outputs of those that completed."""

    status: Literal["completed", "failed"]
    nodes: dict[str, NodeState]
    outputs: dict[str, dict[str, Any]]
    error: NodeError | None = None


@workflow.defn(name="GraphWorkflow")
class GraphWorkflow:
    """Runs ready nodes in parallel (ties broken by node id) until the plan is done or fails."""

    def __init__(self) -> None:
        self._states: dict[str, NodeState] = {}
        self._decisions: dict[str, Any] = {}
        self._running: dict[asyncio.Task[Any], str] = {}
        self._plan: ExecutionPlan | None = None
        self._aborted: str | None = None
        self._stopping = False
        self._finished = False
        self._lost: set[str] = set()
        self._local = False

    @workflow.run
    async def run(self, input: GraphRunInput) -> GraphRunResult:
        """Interpret the plan; a failed run fails its execution."""
        if not workflow.patched(OPERATOR_PATCH):
            return await self._run_first_interpreter(input)
        plan = self._plan = input.plan
        self._local = workflow.patched(LOCAL_PATCH)
        self._states = {
            node.id: NodeState(
                params=node.params, param_sources=dict(node.param_sources), timeout_s=node.timeout_s
            )
            for node in plan.nodes
        }
        self._label(input)
        outputs: dict[str, dict[str, Any]] = {}
        for node_id, reused in input.reuse.items():
            outputs[node_id] = reused
            self._states[node_id].status, self._states[node_id].reused = "completed", True
        failure: NodeError | None = None
        while True:
            if not self._stopping:
                for node in self._ready(plan):
                    task = asyncio.ensure_future(self._run_node(node, input, outputs))
                    self._running[task] = node.id
            if not self._running:
                break
            done, _ = await workflow.wait(list(self._running), return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda finished: self._running[finished]):
                node_id = self._running.pop(task)
                output = task.result()
                if output is not None:
                    outputs[node_id] = output
                if self._states[node_id].status == "failed":
                    failure = failure or self._states[node_id].error
                    self._after_failure(plan.node(node_id))
        self._finished = True
        return self._finish(plan, input, outputs, failure)

    @workflow.query
    def progress(self) -> dict[str, NodeState]:
        """Per-node status, for CLIs and the Temporal UI."""
        return self._states

    @workflow.update
    async def retry_node(self, request: RetryNode) -> NodeState:
        """Run a node awaiting the operator again (changed params and timeout for this retry)."""
        self._decisions[request.node_id] = request
        await workflow.wait_condition(lambda: self._states[request.node_id].status != "awaiting_operator")
        return self._states[request.node_id]

    @retry_node.validator
    def _check_retry(self, request: RetryNode) -> None:
        node = self._awaiting_node(request.node_id)
        if request.params:
            params_model = default_catalog().specs[node.module_key].params_model
            merged = {**self._states[node.id].params, **request.params}
            _validated(params_model, merged, "invalid_params", f"node {node.id!r}: params")

    @workflow.update
    async def skip_node(self, request: SkipNode) -> NodeState:
        """Skip a node awaiting the operator; downstream nodes see the given output."""
        self._decisions[request.node_id] = request
        await workflow.wait_condition(lambda: self._states[request.node_id].status != "awaiting_operator")
        return self._states[request.node_id]

    @skip_node.validator
    def _check_skip(self, request: SkipNode) -> None:
        node = self._awaiting_node(request.node_id)
        if request.output is not None:
            output_model = default_catalog().specs[node.module_key].output_model
            _validated(output_model, request.output, "invalid_output", f"node {node.id!r}: output")
        elif set(node.artifact_outputs) & set(DELIVERABLE_ROLES):
            raise ApplicationError(
                f"node {node.id!r} produces a deliverable ({', '.join(node.artifact_outputs)}): "
                "skip it with an output that names the file, or retry it",
                type="deliverable_needs_output",
                non_retryable=True,
            )

    @workflow.update
    def abort(self, request: AbortRun) -> str:
        """Abort the run: running nodes are cancelled (their child jobs killed); it fails."""
        self._aborted = request.reason
        self._stop()
        return "aborting"

    @abort.validator
    def _check_abort(self, request: AbortRun) -> None:
        if self._finished or self._aborted:
            raise ApplicationError("the run is already ending", type="run_finished", non_retryable=True)

    @workflow.signal
    def decide(self, decision: OperatorDecision) -> None:
        """The first interpreter's operator signal; kept so its histories replay."""
        self._decisions[decision.node_id] = decision

    # --- the run ------------------------------------------------------------------------------

    def _ready(self, plan: ExecutionPlan) -> list[PlanNode]:
        settled = {node_id for node_id, state in self._states.items() if state.status in SETTLED}
        return sorted(
            (
                node
                for node in plan.nodes
                if self._states[node.id].status == "pending" and set(node.depends_on) <= settled
            ),
            key=lambda node: node.id,
        )

    async def _run_node(self, node: PlanNode, input: GraphRunInput, outputs: dict) -> dict | None:
        """Run one node to its end: completed, failed, skipped or cancelled."""
        state = self._states[node.id]
        state.status, state.started_at = "running", workflow.now()
        try:
            output = await self._until_settled(node, state, input, outputs)
        except asyncio.CancelledError:
            state.status, output = "cancelled", None
        # Not in a `finally`: an evicted workflow's coroutines must not touch the workflow clock.
        state.ended_at = workflow.now()
        return output

    async def _until_settled(
        self, node: PlanNode, state: NodeState, input: GraphRunInput, outputs: dict
    ) -> dict | None:
        """Attempts, then the failure policy, and the operator's decisions, until the node settles."""
        while True:
            result = await self._attempts(node, state, input, outputs)
            if result is not None:
                state.status, state.error = "completed", None
                self._on_completed(result)
                return result
            self._mark_failed(node)
            if node.on_failure != FailurePolicy.wait_for_operator:
                state.status = "failed"
                return None
            decision = await self._operator_decision(node, state)
            if isinstance(decision, SkipNode):
                state.status = "skipped"
                return decision.output
            self._apply_retry(state, decision)

    async def _attempts(
        self, node: PlanNode, state: NodeState, input: GraphRunInput, outputs: dict
    ) -> dict | None:
        """Attempts under the node's retry policy; the output, or None when it failed for good."""
        policy = node.retry
        attempt = 0
        while attempt < policy.max_attempts:
            attempt += 1
            state.attempts += 1
            state.status = "running" if attempt == 1 else "retrying"
            try:
                return await self._execute(node, state, input, outputs)
            except ActivityError as error:
                if isinstance(error.cause, CancelledError):
                    # The run cancelled this node (fail_run, abort): its activity confirmed it.
                    raise asyncio.CancelledError() from None
                state.error = node_error(node.id, error)
                if _worker_shut_down(error):
                    attempt -= 1  # a deploy is no fault of the node's: it costs no attempt
                    continue
                if self._stopping or not _retryable(error) or attempt == policy.max_attempts:
                    return None
            delay = policy.initial_interval_s * policy.backoff ** (attempt - 1)
            await workflow.sleep(min(delay, policy.max_interval_s))
        return None

    async def _execute(self, node: PlanNode, state: NodeState, input: GraphRunInput, outputs: dict) -> dict:
        arguments: dict[str, Any] = {"params": state.params}
        for field, binding in node.inputs.items():
            source = input.entry if binding.source_node is None else outputs.get(binding.source_node, {})
            if binding.field in source:
                arguments[field] = source[binding.field]
        timeout = timedelta(seconds=state.timeout_s or node.timeout_s)
        if node.local and self._local:
            # No task-queue round trip: measured 40-100 ms less per node (bench/interpreter_overhead.py).
            return await workflow.execute_local_activity(
                node.module_key,
                arguments,
                result_type=dict,
                start_to_close_timeout=timeout,
                retry_policy=TemporalRetryPolicy(maximum_attempts=1),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        return await workflow.execute_activity(
            node.module_key,
            arguments,
            result_type=dict,
            task_queue=input.task_queues[node.task_queue],
            start_to_close_timeout=timeout,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            # The interpreter retries attempt by attempt, so progress can show `retrying`.
            retry_policy=TemporalRetryPolicy(maximum_attempts=1),
            # A cancelled node returns only once its child process is gone.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )

    async def _operator_decision(self, node: PlanNode, state: NodeState) -> RetryNode | SkipNode:
        state.status = "awaiting_operator"
        self._decisions.pop(node.id, None)
        self._upsert_awaiting()
        await workflow.wait_condition(lambda: node.id in self._decisions)
        decision = self._decisions.pop(node.id)
        state.status = "running"
        self._upsert_awaiting()
        return decision

    def _apply_retry(self, state: NodeState, decision: RetryNode) -> None:
        state.params = {**state.params, **decision.params}
        state.param_sources.update({name: "operator" for name in decision.params})
        if decision.timeout_s is not None:
            state.timeout_s = decision.timeout_s

    def _after_failure(self, node: PlanNode) -> None:
        if node.on_failure == FailurePolicy.fail_run:
            self._stop()
        elif node.on_failure == FailurePolicy.continue_run:
            self._skip_dependants(node.id)

    def _skip_dependants(self, node_id: str) -> None:
        assert self._plan is not None
        for node in self._plan.nodes:
            if node_id in node.depends_on and self._states[node.id].status == "pending":
                self._states[node.id].status = "skipped"
                self._lost.add(node.id)
                self._skip_dependants(node.id)

    def _stop(self) -> None:
        """Start nothing more and cancel every running node (their activities and children)."""
        self._stopping = True
        for task in self._running:
            task.cancel()

    def _finish(
        self, plan: ExecutionPlan, input: GraphRunInput, outputs: dict, failure: NodeError | None
    ) -> GraphRunResult:
        for state in self._states.values():
            if state.status == "pending":
                state.status = "cancelled"
        result = GraphRunResult(status="completed", nodes=self._states, outputs=outputs)
        if self._aborted:
            failure = NodeError(
                code="aborted", message=f"aborted by an operator: {self._aborted}", node_id=""
            )
        elif failure and self._only_continued_failures(plan) and not self._sold_lost(plan, input):
            failure = None
        if failure is None:
            return result
        result.status, result.error = "failed", failure
        raise ApplicationError(
            f"node {failure.node_id!r} failed: {failure.code}: {failure.message}"
            if failure.node_id
            else failure.message,
            result.model_dump(mode="json"),
            type=failure.code,
            non_retryable=True,
        )

    def _only_continued_failures(self, plan: ExecutionPlan) -> bool:
        failed = [node for node in plan.nodes if self._states[node.id].status in ("failed", "cancelled")]
        return all(node.on_failure == FailurePolicy.continue_run for node in failed)

    def _sold_lost(self, plan: ExecutionPlan, input: GraphRunInput) -> bool:
        lost = self._lost | {node_id for node_id, state in self._states.items() if state.status == "failed"}
        if input.sold_roles is None:
            return bool(lost)
        sold = set(input.sold_roles)
        return any(set(plan.node(node_id).artifact_outputs) & sold for node_id in lost)

    # --- search attributes ----------------------------------------------------------------------

    def _label(self, input: GraphRunInput) -> None:
        plan, labels = input.plan, input.labels
        updates: list[SearchAttributeUpdate[Any]] = [
            attributes.FAMILY.value_set(plan.family),
            attributes.DEFINITION.value_set(f"{plan.workflow_id}@{plan.workflow_version}"),
            attributes.AWAITING_OPERATOR.value_set(False),
        ]
        for key, value in (
            (attributes.ORDER_LINE, labels.order_line),
            (attributes.OUTPUT_TYPE, labels.output_type),
            (attributes.ROUTE, labels.route),
            (attributes.RERUN_OF, input.rerun_of),
            (attributes.OWNER, labels.owner),
        ):
            if value:
                updates.append(key.value_set(value))
        step_file = input.entry.get("step_file")
        if isinstance(step_file, dict) and step_file.get("sha256"):
            updates.append(attributes.CAD_FILE.value_set(step_file["sha256"]))
        workflow.upsert_search_attributes(updates)

    def _on_completed(self, output: dict[str, Any]) -> None:
        step_file = output.get("step_file")
        if isinstance(step_file, dict) and step_file.get("sha256"):
            workflow.upsert_search_attributes([attributes.CAD_FILE.value_set(step_file["sha256"])])

    def _mark_failed(self, node: PlanNode) -> None:
        workflow.upsert_search_attributes(
            [attributes.FAILED_NODE.value_set(node.id), attributes.FAILED_MODULE.value_set(node.module_key)]
        )

    def _upsert_awaiting(self) -> None:
        awaiting = any(state.status == "awaiting_operator" for state in self._states.values())
        workflow.upsert_search_attributes([attributes.AWAITING_OPERATOR.value_set(awaiting)])

    def _awaiting_node(self, node_id: str) -> PlanNode:
        """The plan node an operator action names, which must be awaiting the operator."""
        if self._plan is None or node_id not in self._states:
            known = ", ".join(sorted(self._states)) or "none yet"
            raise ApplicationError(f"no node {node_id!r} in this run; nodes: {known}", type="unknown_node")
        status = self._states[node_id].status
        if status != "awaiting_operator" or self._aborted:
            raise ApplicationError(
                f"node {node_id!r} is {status}; only a node awaiting the operator can be retried or skipped",
                type="node_not_awaiting_operator",
            )
        return self._plan.node(node_id)

    # --- the first interpreter, kept so histories recorded before OPERATOR_PATCH replay -------

    async def _run_first_interpreter(self, input: GraphRunInput) -> GraphRunResult:
        plan = input.plan
        self._states = {node.id: NodeState() for node in plan.nodes}
        outputs: dict[str, dict[str, Any]] = {}
        running: dict[asyncio.Task[Any], str] = {}
        failure: NodeError | None = None
        while True:
            if failure is None:
                for node in self._ready(plan):
                    self._states[node.id].status = "running"
                    task = asyncio.ensure_future(self._first_run_node(node, input, outputs))
                    running[task] = node.id
            if not running:
                break
            done, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda finished: running[finished]):
                node_id = running.pop(task)
                output = task.result()
                if output is not None:
                    outputs[node_id] = output
                elif self._states[node_id].status == "failed" and failure is None:
                    failure = self._states[node_id].error
        settled = all(state.status in SETTLED for state in self._states.values())
        status = "completed" if failure is None and settled else "failed"
        return GraphRunResult(status=status, nodes=self._states, outputs=outputs, error=failure)

    async def _first_run_node(self, node: PlanNode, input: GraphRunInput, outputs: dict) -> dict | None:
        state = self._states[node.id]
        while True:
            state.status, state.error = "running", None
            try:
                arguments: dict[str, Any] = {"params": node.params}
                for field, binding in node.inputs.items():
                    source = (
                        input.entry if binding.source_node is None else outputs.get(binding.source_node, {})
                    )
                    if binding.field in source:
                        arguments[field] = source[binding.field]
                result = await workflow.execute_activity(
                    node.module_key,
                    arguments,
                    result_type=dict,
                    task_queue=input.task_queues[node.task_queue],
                    start_to_close_timeout=timedelta(seconds=node.timeout_s),
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=temporal_retry(node.retry),
                )
                state.status = "completed"
                return result
            except ActivityError as error:
                state.error = node_error(node.id, error)
                state.attempts += 1
            if node.on_failure != FailurePolicy.wait_for_operator:
                state.status = "failed"
                return None
            state.status = "awaiting_operator"
            self._decisions.pop(node.id, None)
            await workflow.wait_condition(lambda: node.id in self._decisions)
            if self._decisions[node.id].action == "skip":
                state.status = "skipped"
                return None


def node_error(node_id: str, error: ActivityError) -> NodeError:
    """The module's failure as the node's error: its code (the ApplicationError type) and words."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return NodeError(code=cause.type or "activity_failed", message=cause.message, node_id=node_id)
    if isinstance(cause, TimeoutError):
        return NodeError(code="activity_timeout", message=str(cause), node_id=node_id)
    return NodeError(code="activity_failed", message=str(cause or error), node_id=node_id)


def _worker_shut_down(error: ActivityError) -> bool:
    """The worker running the attempt shut down (Temporal's SDK reports it so)."""
    cause = error.cause
    return isinstance(cause, ApplicationError) and cause.type == WORKER_SHUTDOWN


def _retryable(error: ActivityError) -> bool:
    """Deterministic input errors are not; timeouts, kills and passing faults are."""
    cause = error.cause
    return not (isinstance(cause, ApplicationError) and cause.non_retryable)


def _validated(model: type[BaseModel], document: dict[str, Any], code: str, what: str) -> None:
    """Refuse an operator's document that does not fit its contract, naming the field."""
    try:
        model.model_validate(document)
    except ValidationError as exc:
        field, words = first_problem(exc)
        raise ApplicationError(f"{what}.{field or '(whole)'}: {words}", type=code) from None
