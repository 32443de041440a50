"""The generic graph interpreter: one Temporal workflow that runs any compiled plan."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from core.temporal import temporal_retry
    from core.vocabulary import FailurePolicy
    from registry.plan import ExecutionPlan, PlanNode

NodeStatus = Literal["pending", "running", "completed", "failed", "awaiting_operator", "skipped"]
HEARTBEAT_TIMEOUT = timedelta(seconds=60)


class GraphRunInput(BaseModel):
    """A pinned plan, the entry context, and the concrete task queues of this deployment."""

    model_config = ConfigDict(extra="forbid")

    plan: ExecutionPlan
    entry: dict[str, Any]
    task_queues: dict[str, str]
    """Logical queue (default, cad, render) → task queue name."""


class NodeError(BaseModel):
    """Why a node failed, in the words of the module."""

    code: str
    message: str
    node_id: str


class NodeState(BaseModel):
    """Progress of one node."""

    status: NodeStatus = "pending"
    attempts: int = 0
    error: NodeError | None = None


class OperatorDecision(BaseModel):
    """What an operator wants done with a node that failed for good."""

    node_id: str
    action: Literal["retry", "skip"]


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
        self._decisions: dict[str, OperatorDecision] = {}

    @workflow.run
    async def run(self, input: GraphRunInput) -> GraphRunResult:
        """Interpret the plan."""
        plan = input.plan
        self._states = {node.id: NodeState() for node in plan.nodes}
        outputs: dict[str, dict[str, Any]] = {}
        running: dict[asyncio.Task, str] = {}
        failure: NodeError | None = None
        while True:
            if failure is None:
                for node in self._ready(plan):
                    self._states[node.id].status = "running"
                    task = asyncio.ensure_future(self._run_node(node, input, outputs))
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
        status = "completed" if failure is None and self._all_settled() else "failed"
        return GraphRunResult(status=status, nodes=self._states, outputs=outputs, error=failure)

    @workflow.query
    def progress(self) -> dict[str, NodeState]:
        """Per-node status, for CLIs and the Temporal UI."""
        return self._states

    @workflow.signal
    def decide(self, decision: OperatorDecision) -> None:
        """An operator retries or skips a node that is awaiting_operator."""
        self._decisions[decision.node_id] = decision

    def _ready(self, plan: ExecutionPlan) -> list[PlanNode]:
        settled = {
            node_id for node_id, state in self._states.items() if state.status in ("completed", "skipped")
        }
        return sorted(
            (
                node
                for node in plan.nodes
                if self._states[node.id].status == "pending" and set(node.depends_on) <= settled
            ),
            key=lambda node: node.id,
        )

    def _all_settled(self) -> bool:
        return all(state.status in ("completed", "skipped") for state in self._states.values())

    async def _run_node(self, node: PlanNode, input: GraphRunInput, outputs: dict) -> dict | None:
        """Run one node; on a final failure, fail or wait for the operator's decision."""
        state = self._states[node.id]
        while True:
            state.status, state.error = "running", None
            try:
                result = await self._execute(node, input, outputs)
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

    async def _execute(self, node: PlanNode, input: GraphRunInput, outputs: dict) -> dict:
        arguments: dict[str, Any] = {"params": node.params}
        for field, binding in node.inputs.items():
            source = input.entry if binding.source_node is None else outputs.get(binding.source_node, {})
            if binding.field in source:
                arguments[field] = source[binding.field]
        return await workflow.execute_activity(
            node.module_key,
            arguments,
            result_type=dict,
            task_queue=input.task_queues[node.task_queue],
            start_to_close_timeout=timedelta(seconds=node.timeout_s),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=temporal_retry(node.retry),
        )


def node_error(node_id: str, error: ActivityError) -> NodeError:
    """The module's failure as the node's error: its code (the ApplicationError type) and words."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return NodeError(code=cause.type or "activity_failed", message=cause.message, node_id=node_id)
    if isinstance(cause, TimeoutError):
        return NodeError(code="activity_timeout", message=str(cause), node_id=node_id)
    return NodeError(code="activity_failed", message=str(cause or error), node_id=node_id)
