"""Benchmark: what the generic graph interpreter costs per node over a hard-coded chain.

The same linear chain of N instant stand-in activities (bench.step_0 → bench.step_1 → …, each
fed the previous one's output) runs three ways on one embedded Temporal dev server and one Worker:

- graph: `workflows.graph.GraphWorkflow` interpreting an ExecutionPlan of N PlanNodes;
- hardcoded: a workflow defined here that awaits `workflow.execute_activity` N times, with the
  same start-to-close and heartbeat timeouts and the same retry policy;
- local: the same hard-coded chain with `workflow.execute_local_activity` (measurement only: what
  local activities would save per node; the interpreter does not use them).

Runs go one at a time, interleaved (graph, hardcoded, local, graph, …) so drift hits all three
alike, after one unmeasured warm-up run of each. Prints a table of medians, the ratio
graph/hardcoded and the per-node overhead, and ends with one line `ratio graph_vs_hardcoded VALUE`.

Usage: .venv/bin/python bench/interpreter_overhead.py [--nodes N] [--runs R] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow

if __name__ == "__main__":  # inside the sandbox (as __temporal_main__) the path is already set
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# This module is also imported inside Temporal's workflow sandbox (as __temporal_main__), once per
# run of a workflow defined here: project modules and pydantic are passed through, not re-imported.
with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict
    from temporalio.client import Client
    from temporalio.worker import Worker

    from core.settings import Settings
    from core.temporal import connect, temporal_retry
    from core.vocabulary import FailurePolicy, RetryPolicy
    from prodgraph.embedded import embedded_temporal
    from registry.plan import ExecutionPlan, PlanNode, PortBinding
    from workflows.graph import HEARTBEAT_TIMEOUT, GraphRunInput, GraphWorkflow

RETRY = RetryPolicy(max_attempts=1)
TIMEOUT_S = 60.0
RUN_LIMIT_S = 60.0
"""A run that takes longer is stuck (a workflow task failing over and over): the bench fails."""
VARIANTS = ("graph", "hardcoded", "local")


def step_name(index: int) -> str:
    """The activity (module key) of the chain's step `index`."""
    return f"bench.step_{index}"


def stand_in(name: str, index: int):
    """An instant activity under its own name: returns a small dict at once."""

    @activity.defn(name=name)
    async def run(input: dict) -> dict:
        return {"step": index, "previous": input.get("previous")}

    return run


class ChainInput(BaseModel):
    """The hard-coded chain's input: its activities in order, where they run, the node limits."""

    model_config = ConfigDict(extra="forbid")

    steps: list[str]
    task_queue: str
    timeout_s: float
    retry: RetryPolicy


@workflow.defn(name="BenchHardcodedChain")
class HardcodedChainWorkflow:
    """The chain with no interpreter: one `execute_activity` after another."""

    @workflow.run
    async def run(self, input: ChainInput) -> dict[str, Any]:
        """Call every step, feeding each the previous step's output."""
        output: dict[str, Any] = {}
        for step in input.steps:
            output = await workflow.execute_activity(
                step,
                {"params": {}, "previous": output.get("step")},
                result_type=dict,
                task_queue=input.task_queue,
                start_to_close_timeout=timedelta(seconds=input.timeout_s),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=temporal_retry(input.retry),
            )
        return output


@workflow.defn(name="BenchLocalActivityChain")
class LocalActivityChainWorkflow:
    """The same chain as local activities: run by the workflow's own worker, no activity tasks."""

    @workflow.run
    async def run(self, input: ChainInput) -> dict[str, Any]:
        """Call every step as a local activity (heartbeats do not exist for these)."""
        output: dict[str, Any] = {}
        for step in input.steps:
            output = await workflow.execute_local_activity(
                step,
                {"params": {}, "previous": output.get("step")},
                result_type=dict,
                start_to_close_timeout=timedelta(seconds=input.timeout_s),
                retry_policy=temporal_retry(input.retry),
            )
        return output


def chain_plan(nodes: int) -> ExecutionPlan:
    """A linear plan n0 → n1 → …, node i calling bench.step_i with n(i-1)'s `step` as input."""
    return ExecutionPlan(
        workflow_id="bench-interpreter-overhead",
        workflow_version=1,
        family="order_line",
        catalog_version="bench",
        nodes=[
            PlanNode(
                id=f"n{index}",
                step=step_name(index),
                module_key=step_name(index),
                task_queue="default",
                timeout_s=TIMEOUT_S,
                params={},
                param_sources={},
                depends_on=[f"n{index - 1}"] if index else [],
                inputs={"previous": PortBinding(source_node=f"n{index - 1}", field="step")} if index else {},
                retry=RETRY,
                on_failure=FailurePolicy.fail_run,
            )
            for index in range(nodes)
        ],
    )


def runners(client: Client, queue: str, nodes: int) -> dict[str, Callable[[], Awaitable[None]]]:
    """One coroutine factory per variant; each runs one whole chain and checks it finished."""
    plan = chain_plan(nodes)
    chain = ChainInput(
        steps=[step_name(index) for index in range(nodes)], task_queue=queue, timeout_s=TIMEOUT_S, retry=RETRY
    )
    last = nodes - 1

    async def graph() -> None:
        result = await client.execute_workflow(
            GraphWorkflow.run,
            GraphRunInput(plan=plan, entry={}, task_queues={"default": queue}),
            id=f"bench-graph-{uuid.uuid4().hex}",
            task_queue=queue,
        )
        assert result.status == "completed", result.error
        assert result.outputs[f"n{last}"]["step"] == last

    async def hardcoded() -> None:
        output = await client.execute_workflow(
            HardcodedChainWorkflow.run, chain, id=f"bench-hardcoded-{uuid.uuid4().hex}", task_queue=queue
        )
        assert output["step"] == last

    async def local() -> None:
        output = await client.execute_workflow(
            LocalActivityChainWorkflow.run, chain, id=f"bench-local-{uuid.uuid4().hex}", task_queue=queue
        )
        assert output["step"] == last

    return {"graph": graph, "hardcoded": hardcoded, "local": local}


async def measure(nodes: int, runs: int) -> dict[str, list[float]]:
    """Wall seconds of every measured run, per variant, on a dev server of its own."""
    queue = f"bench-overhead-{uuid.uuid4().hex[:6]}"
    state_dir = Path(tempfile.mkdtemp(prefix="prodgraph-bench-"))
    settings = Settings(state_dir=state_dir, default_queue=queue, cad_queue=queue, render_queue=queue)
    durations: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    try:
        async with embedded_temporal(state_dir) as endpoint:
            client = await connect(endpoint.address, settings)
            async with Worker(
                client,
                task_queue=queue,
                workflows=[GraphWorkflow, HardcodedChainWorkflow, LocalActivityChainWorkflow],
                activities=[stand_in(step_name(index), index) for index in range(nodes)],
            ):
                run_one = runners(client, queue, nodes)
                for variant in VARIANTS:  # warm-up: first-run costs (sandbox, caches) go unmeasured
                    await limited(variant, run_one[variant])
                for _ in range(runs):
                    for variant in VARIANTS:
                        started = time.perf_counter()
                        await limited(variant, run_one[variant])
                        durations[variant].append(time.perf_counter() - started)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    return durations


async def limited(variant: str, run: Callable[[], Awaitable[None]]) -> None:
    """One run, or a clear error if it does not finish within RUN_LIMIT_S."""
    try:
        await asyncio.wait_for(run(), RUN_LIMIT_S)
    except TimeoutError:
        raise RuntimeError(
            f"a {variant} run did not finish in {RUN_LIMIT_S:g} s; see the worker's warnings above"
        ) from None


def summary(nodes: int, runs: int, durations: dict[str, list[float]]) -> dict[str, Any]:
    """Medians, the ratios to the hard-coded chain, and per-node differences in milliseconds."""
    median = {variant: statistics.median(values) for variant, values in durations.items()}
    graph, hardcoded, local = median["graph"], median["hardcoded"], median["local"]
    return {
        "nodes": nodes,
        "runs": runs,
        "median_s": median,
        "min_s": {variant: min(values) for variant, values in durations.items()},
        "max_s": {variant: max(values) for variant, values in durations.items()},
        "ratio_graph_vs_hardcoded": graph / hardcoded,
        "ratio_local_vs_hardcoded": local / hardcoded,
        "paired_ratio_graph_vs_hardcoded": statistics.median(
            g / h for g, h in zip(durations["graph"], durations["hardcoded"], strict=True)
        ),
        "graph_overhead_ms_per_node": (graph - hardcoded) / nodes * 1000,
        "local_saving_ms_per_node": (hardcoded - local) / nodes * 1000,
        "durations_s": durations,
    }


def report(result: dict[str, Any]) -> None:
    """The side-by-side table, then the spread of each variant."""
    median = result["median_s"]
    header = (
        f"{'N':>4}{'runs':>6}{'graph s':>10}{'hardcoded s':>13}{'local s':>10}"
        f"{'graph/hardcoded':>17}{'graph overhead ms/node':>24}{'local saves ms/node':>21}"
    )
    print(
        f"Linear chain of {result['nodes']} instant activities, {result['runs']} runs of each, interleaved, "
        "one at a time, one Worker, embedded Temporal dev server (median wall seconds per run)"
    )
    print(header)
    print(
        f"{result['nodes']:>4}{result['runs']:>6}{median['graph']:>10.3f}{median['hardcoded']:>13.3f}"
        f"{median['local']:>10.3f}{result['ratio_graph_vs_hardcoded']:>17.3f}"
        f"{result['graph_overhead_ms_per_node']:>24.2f}{result['local_saving_ms_per_node']:>21.2f}"
    )
    for variant, label in (
        ("graph", "graph      (GraphWorkflow, execute_activity)"),
        ("hardcoded", "hardcoded  (fixed chain, execute_activity)"),
        ("local", "local      (fixed chain, execute_local_activity)"),
    ):
        print(
            f"  {label:<50} median {median[variant]:.3f} s  "
            f"min {result['min_s'][variant]:.3f} s  max {result['max_s'][variant]:.3f} s"
        )
    print(
        f"  graph/hardcoded, median of the {result['runs']} same-round pairs "
        f"{result['paired_ratio_graph_vs_hardcoded']:.3f}; "
        f"local/hardcoded {result['ratio_local_vs_hardcoded']:.3f}"
    )


def main() -> None:
    """Parse options, measure, print; the last line is for scripts."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10, help="activities in the chain (default 10)")
    parser.add_argument("--runs", type=int, default=10, help="measured runs of each variant (default 10)")
    parser.add_argument("--json", action="store_true", help="also print the numbers as one JSON object")
    args = parser.parse_args()
    if args.nodes < 1 or args.runs < 1:
        parser.error("--nodes and --runs must be at least 1")
    try:
        durations = asyncio.run(measure(args.nodes, args.runs))
    except Exception:  # noqa: BLE001 - reported, then the process exits 1 at once
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    result = summary(args.nodes, args.runs, durations)
    report(result)
    if args.json:
        print(json.dumps(result))
    print(f"ratio graph_vs_hardcoded {result['ratio_graph_vs_hardcoded']:.3f}")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # as graph_vs_legacy.py: do not wait on the SDK's leftover threads
