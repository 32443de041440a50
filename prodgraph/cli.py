"""The `prodgraph` command line: render, intake, order, run, on-call (runs), the registry, API keys,
servers."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args

from core.errors import ProdgraphError
from core.settings import get_settings
from core.temporal import TemporalSession
from core.vocabulary import FAMILIES, Engine, Role
from prodgraph.operations import MAX_LISTED, RunStatus
from prodgraph.reports import RunReport, failure_report

if TYPE_CHECKING:
    from sqlmodel import Session

Result = TypeVar("Result")

SYMBOLS = {
    "running": "…",
    "completed": "✓",
    "failed": "✗",
    "awaiting_operator": "?",
    "skipped": "-",
    "pending": " ",
    "retrying": "↻",
    "cancelled": "×",
}
#: Node statuses whose last error is news.
FAILING = ("failed", "retrying", "awaiting_operator")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except ProdgraphError as error:
        code = _fail(args, error.to_dict())
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # temporalio can crash at interpreter exit (known upstream)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prodgraph", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for name, render in (("render", True), ("intake", False)):
        command = commands.add_parser(
            name,
            help="intake a STEP file and render a still"
            if render
            else "intake a STEP file: objects, GLB, bounding box",
        )
        command.add_argument("step_file", type=Path)
        command.add_argument("--out", type=Path, default=Path("out"), help="output directory")
        command.add_argument("--json", action="store_true", help="end with one JSON object")
        if render:
            _add_render_flags(command)
        command.set_defaults(handler=_produce, render=render)
    order = commands.add_parser("order", help="produce one order line through an output type")
    order.add_argument("output_type", help="output type slug, e.g. studio-still")
    order.add_argument("step_file", type=Path)
    order.add_argument("--out", type=Path, default=Path("out"), help="output directory")
    order.add_argument("--order-line-id")
    order.add_argument("--category", help="product category")
    order.add_argument("--json", action="store_true", help="end with one JSON object")
    _add_render_flags(order)
    order.set_defaults(handler=_order)
    _add_run_command(commands)
    _add_runs_commands(commands)
    nodes = commands.add_parser("nodes", help="list node definitions")
    nodes.add_argument("--family", choices=FAMILIES)
    nodes.add_argument("--json", action="store_true")
    nodes.set_defaults(handler=_nodes)
    _file_command(commands, "validate", "validate a workflow definition file", "definition", _validate)
    legacy = commands.add_parser("legacy", help="legacy output types").add_subparsers(
        required=True, metavar="ACTION"
    )
    _file_command(legacy, "map", "map a legacy export to invocation profiles", "export", _legacy_map)
    output_types = commands.add_parser("output-types", help="output types").add_subparsers(
        required=True, metavar="ACTION"
    )
    _file_command(
        output_types, "import", "import a legacy export as output types", "export", _import_output_types
    )
    _add_rollout_commands(commands, output_types)
    _add_keys_commands(commands)
    server = commands.add_parser("server", help="the embedded Temporal dev server")
    server.add_argument("action", choices=["start", "stop", "status"])
    server.set_defaults(handler=_server)
    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=_serve)
    dev = commands.add_parser(
        "dev", help="run the embedded Temporal server, every worker and the API until Ctrl-C"
    )
    dev.add_argument("--port", type=int, default=8000, help="the API's port")
    dev.set_defaults(handler=_dev)
    return parser


def _file_command(commands, name: str, help: str, argument: str, handler) -> None:
    """A sub-command that reads one JSON file and may answer in JSON."""
    command = commands.add_parser(name, help=help)
    command.add_argument(argument, type=Path)
    command.add_argument("--json", action="store_true")
    command.set_defaults(handler=handler)


def _add_render_flags(command: argparse.ArgumentParser) -> None:
    """Invocation parameters a user may set per run."""
    command.add_argument("--width", type=int)
    command.add_argument("--height", type=int)
    command.add_argument("--samples", type=int)
    command.add_argument("--engine", choices=[str(engine) for engine in Engine])
    command.add_argument("--transparent", action="store_true", default=None, dest="transparent_background")
    command.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any invocation parameter (VALUE read as JSON, else as text); repeat for more",
    )


def _invocation(args: argparse.Namespace) -> dict[str, Any]:
    flags = {
        key: getattr(args, key, None)
        for key in ("width", "height", "samples", "engine", "transparent_background")
        if getattr(args, key, None) is not None
    }
    return {**flags, **dict(_param(item) for item in getattr(args, "param", []))}


def _param(item: str) -> tuple[str, Any]:
    """KEY=VALUE, the value read as JSON when it is JSON (`samples=8`, `denoise=false`)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ProdgraphError(f"--param {item!r}: write KEY=VALUE", field="param")
    try:
        return key.strip(), json.loads(text)
    except json.JSONDecodeError:
        return key.strip(), text


def _order(args: argparse.Namespace) -> int:
    from prodgraph.production import produce_order_line

    report = _in_session(
        lambda session: produce_order_line(
            session,
            args.output_type,
            args.step_file,
            args.out,
            order_line_id=args.order_line_id,
            product_category=args.category,
            invocation_params=_invocation(args),
            on_progress=_progress_printer(args),
        )
    )
    return _answer(args, report, headline=f"{report.route} route: {report.status}")


def _produce(args: argparse.Namespace) -> int:
    from prodgraph.production import produce

    report = _in_session(
        lambda session: produce(
            session,
            args.step_file,
            args.out,
            render=args.render,
            invocation_params=_invocation(args),
            on_progress=_progress_printer(args),
        )
    )
    return _answer(args, report)


def _progress_printer(args: argparse.Namespace) -> Callable[[str, str, Any], None]:
    """Print each node change on one line (to stderr with --json, so stdout stays one JSON line)."""

    def progress(workflow_id: str, node_id: str, state: Any) -> None:
        attempt = f" (attempt {state.attempts})" if state.attempts > 1 else ""
        detail = (
            f"  {state.error.code}: {state.error.message}" if state.error and state.status in FAILING else ""
        )
        print(
            f"[{SYMBOLS.get(state.status, '?')}] {workflow_id} {node_id}: {state.status}{attempt}{detail}",
            file=sys.stderr if args.json else sys.stdout,
            flush=True,
        )

    return progress


def _in_session(use_case: Callable[[TemporalSession], Awaitable[Result]]) -> Result:
    """Run a use case on the configured (or embedded) Temporal, logs going to the state folder."""
    from prodgraph.runs import temporal_session

    settings = get_settings()
    _log_to_file(settings.state_dir / "prodgraph.log")

    async def run() -> Result:
        async with temporal_session(settings) as session:
            return await use_case(session)

    return asyncio.run(run())


def _answer(args: argparse.Namespace, report: RunReport, headline: str | None = None) -> int:
    """Print the report (one JSON line with --json) and give the exit code its status means."""
    if args.json:
        print(report.model_dump_json())
    else:
        if headline:
            print(headline)
        _print_summary(report)
    return 0 if report.status == "completed" else 1


def _log_to_file(path: Path) -> None:
    """Worker and SDK logs (activity tracebacks included) go to a file, not the user's terminal."""
    import logging

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def _print_summary(report: RunReport) -> None:
    if report.error:
        error = report.error
        where = f" at node {error.node_id}" if error.node_id else ""
        print(f"FAILED{where}: {error.code}: {error.message}")
    for artifact in report.artifacts:
        print(f"{artifact.role:>10}: {artifact.path}")
    if report.bbox:
        size = [round(hi - lo, 6) for lo, hi in zip(report.bbox.min, report.bbox.max, strict=True)]
        print(f"      bbox: {size} m")
    print(f"  temporal: {report.temporal_ui or 'no UI configured'}")


def _nodes(args: argparse.Namespace) -> int:
    from registry.catalog import default_catalog

    catalog = default_catalog()
    definitions = [definition.model_dump(mode="json") for definition in catalog.list(args.family)]
    if args.json:
        print(json.dumps({"catalog_version": catalog.version, "node_definitions": definitions}))
    else:
        for definition in definitions:
            print(f"{definition['step']:<28} {definition['family']:<11} {definition['label']}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from registry.catalog import default_catalog
    from registry.validation import validate_document

    document = _read_json(args.definition)
    report = validate_document(document, default_catalog())
    if args.json:
        print(report.model_dump_json())
    else:
        for problem in report.errors + report.warnings:
            print(f"{problem.code:<20} {problem.node_id or '-':<16} {problem.message}")
        print("valid" if report.valid else "invalid")
    return 0 if report.valid else 1


def _legacy_map(args: argparse.Namespace) -> int:
    from legacy_adapter.mapping import map_legacy_export

    results = map_legacy_export(_read_json(args.export))
    for result in results:
        outcome = (
            f"error at {result['error']['key']}: {result['error']['message']}"
            if result["error"]
            else result["artifact_kind"]
        )
        print(f"{result['slug']:<32} {outcome}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        # Exactly the shape of expected_invocations.json; the messages went to stderr above.
        for result in results:
            if result["error"]:
                result["error"] = {"key": result["error"]["key"]}
        print(json.dumps(results, indent=1))
    # A record the adapter cannot read is a finding in the output, not a failed command.
    return 0


@contextmanager
def _database() -> Iterator[Session]:
    """A session on the configured database, prepared for first use (tables, seed)."""
    from sqlmodel import Session

    from persistence.engine import make_engine, prepare_database
    from registry.catalog import default_catalog

    engine = make_engine(get_settings())
    try:
        prepare_database(engine, default_catalog())
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def _import_output_types(args: argparse.Namespace) -> int:
    from prodgraph.legacy_import import import_export

    records = _read_json(args.export)
    if not isinstance(records, list):
        raise ProdgraphError(f"{args.export}: a legacy export is a JSON list of output types")
    with _database() as session:
        report = import_export(session, records)
    if args.json:
        print(report.model_dump_json())
    else:
        for record in report.records:
            detail = (
                f"error at {record.error.key}: {record.error.message}"
                if record.error
                else f"{record.artifact_kind}" + "".join(f"; {w}" for w in record.warnings)
            )
            print(f"{record.status:<8} {record.slug or '-':<32} {detail}")
        print(f"{report.created} created, {report.updated} updated, {report.errors} errors")
    return 0


def _add_keys_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys: create one, list them, revoke one").add_subparsers(
        required=True, metavar="ACTION"
    )
    create = keys.add_parser(
        "create",
        help="create an API key and print it, once",
        description="Create an API key in the database and print it: it is shown this once, only "
        'its SHA-256 digest is kept. With --json the output is {"key", "role", "owner"}.',
    )
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--owner", required=True, help="who the key acts for (a client owns its files, runs)")
    _json_flag(create)
    create.set_defaults(handler=_keys_create)
    listing = keys.add_parser("list", help="every key in the database, without secrets")
    _json_flag(listing)
    listing.set_defaults(handler=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key (a running API refuses it within seconds)")
    revoke.add_argument("key_id", metavar="ID", help="the key's id, from `keys list`")
    _json_flag(revoke)
    revoke.set_defaults(handler=_keys_revoke)


def _keys_create(args: argparse.Namespace) -> int:
    from prodgraph.keys import create_key, key_request

    request = key_request(args.role, args.owner)
    with _database() as session:
        created = create_key(session, request)
    if args.json:
        print(json.dumps({"key": created.key, "role": created.role, "owner": created.owner}))
    else:
        # The key alone on stdout, so `KEY=$(prodgraph keys create ...)` works.
        print(created.key)
        print(
            f"created {created.id} ({created.role} of {created.owner}); it is shown this once, "
            "only its SHA-256 is kept",
            file=sys.stderr,
        )
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from prodgraph.keys import list_keys

    with _database() as session:
        keys = list_keys(session)
    if args.json:
        print(json.dumps([key.model_dump(mode="json") for key in keys]))
        return 0
    for key in keys:
        revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        print(f"{key.id:<22} {key.role:<9} {key.owner:<24} {key.created_at:%Y-%m-%d %H:%M}  {revoked}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from prodgraph.keys import revoke_key

    with _database() as session:
        key = revoke_key(session, args.key_id)
    if args.json:
        print(key.model_dump_json())
    else:
        print(f"revoked {key.id} ({key.role} of {key.owner})")
    return 0


def _server(args: argparse.Namespace) -> int:
    from prodgraph.embedded import ensure_dev_server, stop_dev_server

    settings = get_settings()
    if args.action == "stop":
        stopped = stop_dev_server(settings.state_dir)
        print("stopped" if stopped else "no embedded server was running")
        return 0
    if args.action == "status" and not (settings.state_dir / "temporal-server.json").exists():
        print("not running")
        return 1
    endpoint = asyncio.run(ensure_dev_server(settings.state_dir, settings.temporal_namespace))
    print(f"Temporal at {endpoint.address}, Web UI at {endpoint.ui_url}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    # The API is a layer above the CLI: start it as its own program, never import it.
    import subprocess

    command = [sys.executable, "-m", "api.app", "--host", args.host, "--port", str(args.port)]
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130


def _dev(args: argparse.Namespace) -> int:
    from prodgraph.dev import run_dev

    settings = get_settings()
    _log_to_file(settings.state_dir / "prodgraph.log")
    return asyncio.run(run_dev(settings, "127.0.0.1", args.port))


# --- run any definition; on-call: find, show and repair runs ---------------------------------


def _add_run_command(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run a workflow definition file on a STEP file",
        description="Validate, compile and run a workflow definition on a STEP file. A cad_file "
        "definition runs on the file; an order_line definition runs on the artifacts of the file's "
        "intake (the cad-intake-v1 starter), which runs first. Without --detach every node change "
        "is printed, and a node that waits for the operator is printed with the commands that "
        "repair it (`prodgraph runs retry|skip|abort`, from another terminal).",
    )
    run.add_argument("definition", type=Path, help="workflow definition JSON (cad_file or order_line)")
    run.add_argument("step_file", type=Path)
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NODE.KEY=VALUE",
        help="set a node's param before compiling (VALUE is read as JSON when it parses, else as "
        "a string); repeatable",
    )
    run.add_argument(
        "--detach",
        action="store_true",
        help="start the run, print its id and return. An order_line definition's intake still runs "
        "to the end first (the order line starts from its artifacts); then the order-line graph is "
        "started detached. With the embedded server a detached run moves on only while a prodgraph "
        "command (or worker.py) runs workers",
    )
    run.add_argument("--out", type=Path, help="copy the deliverables there when the run completes")
    _json_flag(run)
    run.set_defaults(handler=_run)


def _add_runs_commands(commands: Any) -> None:
    runs = commands.add_parser("runs", help="on-call: find runs, show one, repair it").add_subparsers(
        required=True, metavar="ACTION"
    )
    listing = runs.add_parser("list", help="runs matching every filter, newest first")
    listing.add_argument("--order-line", help="order line id")
    listing.add_argument("--output-type", help="output type slug")
    listing.add_argument("--family", choices=FAMILIES)
    listing.add_argument("--status", choices=get_args(RunStatus))
    listing.add_argument("--limit", type=_limit, default=50, help=f"at most this many (≤ {MAX_LISTED})")
    _json_flag(listing)
    listing.set_defaults(handler=_runs_list)

    show = runs.add_parser("show", help="a run's nodes: status, attempts, error, progress, params")
    show.add_argument("run", help="workflow id")
    _json_flag(show)
    show.set_defaults(handler=_runs_show)

    retry = runs.add_parser("retry", help="retry a node awaiting the operator")
    retry.add_argument("run", help="workflow id")
    retry.add_argument("node", help="node id")
    retry.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a param for this retry (VALUE is read as JSON when it parses, else as a "
        "string); repeatable",
    )
    retry.add_argument("--timeout", type=float, metavar="S", help="the node's timeout for this retry")
    _json_flag(retry)
    retry.set_defaults(handler=_runs_retry)

    skip = runs.add_parser("skip", help="skip a node awaiting the operator")
    skip.add_argument("run", help="workflow id")
    skip.add_argument("node", help="node id")
    skip.add_argument(
        "--output",
        type=Path,
        metavar="FILE.json",
        help="the output downstream nodes see, checked against the node's output contract; "
        "without it the run decides (a node that produces a deliverable needs one)",
    )
    _json_flag(skip)
    skip.set_defaults(handler=_runs_skip)

    abort = runs.add_parser("abort", help="abort a running run: running nodes are cancelled")
    abort.add_argument("run", help="workflow id")
    abort.add_argument("--reason", required=True, help="why (recorded in the run's failure)")
    _json_flag(abort)
    abort.set_defaults(handler=_runs_abort)

    rerun = runs.add_parser(
        "rerun",
        help="start a new run of a closed run's plan, reusing what completed",
        description="Start a new run of a closed run's pinned plan. Completed nodes keep their "
        "outputs, except --from, nodes with changed params, and everything downstream of them. "
        "Prints the new run's id (with the embedded server it moves on while a prodgraph command "
        "runs workers).",
    )
    rerun.add_argument("run", help="workflow id of the closed run")
    rerun.add_argument("--from", dest="from_node", metavar="NODE", help="run this node again")
    rerun.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NODE.KEY=VALUE",
        help="change a node's param (VALUE is read as JSON when it parses, else as a string); repeatable",
    )
    _json_flag(rerun)
    rerun.set_defaults(handler=_runs_rerun)


def _json_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument("--json", action="store_true", help="end with one JSON document")


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_LISTED:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_LISTED}")
    return value


def _value(text: str) -> Any:
    """A --param value: JSON when it parses (4, true, [1, 2]), else the text itself (eevee)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _params(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE items as params."""
    params: dict[str, Any] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ProdgraphError(f"--param {item!r}: expected KEY=VALUE", field="param")
        params[key] = _value(value)
    return params


def _node_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """NODE.KEY=VALUE items as node id → params (a node id may hold dots; a param name does not)."""
    params: dict[str, dict[str, Any]] = {}
    for item in items:
        target, equals, value = item.partition("=")
        node_id, dot, key = target.rpartition(".")
        if not equals or not dot or not node_id or not key:
            raise ProdgraphError(f"--param {item!r}: expected NODE.KEY=VALUE", field="param")
        params.setdefault(node_id, {})[key] = _value(value)
    return params


def _run(args: argparse.Namespace) -> int:
    from prodgraph.launch import Launched, load_definition, run_definition

    definition = load_definition(_read_json(args.definition), _node_params(args.param))
    stream = sys.stderr if args.json else sys.stdout

    def awaiting(workflow_id: str, node_id: str, commands: list[str]) -> None:
        print(f"node {node_id} of {workflow_id} awaits the operator; repair it with one of:", file=stream)
        for command in commands:
            print(f"    {command}", file=stream, flush=True)

    result = _in_session(
        lambda session: run_definition(
            session,
            definition,
            args.step_file,
            out_dir=args.out,
            detach=args.detach,
            on_progress=_progress_printer(args),
            on_awaiting=awaiting,
        )
    )
    if not isinstance(result, Launched):
        return _answer(args, result)
    if args.json:
        print(result.model_dump_json())
    else:
        print(result.workflow_id)
        print(f"  temporal: {result.temporal_ui or 'no UI configured'}")
    return 0


def _runs_list(args: argparse.Namespace) -> int:
    from prodgraph.operations import list_runs

    runs = _in_session(
        lambda session: list_runs(
            session,
            order_line=args.order_line,
            output_type=args.output_type,
            family=args.family,
            status=args.status,
            limit=args.limit,
        )
    )
    if args.json:
        print(json.dumps([run.model_dump(mode="json") for run in runs]))
        return 0
    for run in runs:
        labels = run.search_attributes
        failed = labels.get("ProdgraphFailedNode")
        started = run.started_at.strftime("%Y-%m-%d %H:%M:%S") if run.started_at else "-"
        print(
            f"[{SYMBOLS.get(run.status, '?')}] {run.workflow_id:<48} {run.status:<17} "
            f"{labels.get('ProdgraphFamily', '-'):<10} {started}"
            + (f"  failed node: {failed}" if failed and run.status != "completed" else "")
        )
    print(f"{len(runs)} run{'s' if len(runs) != 1 else ''}")
    return 0


def _runs_show(args: argparse.Namespace) -> int:
    from prodgraph.operations import show_run

    view = _in_session(lambda session: show_run(session, args.run))
    if args.json:
        print(view.model_dump_json())
        return 0
    definition = view.search_attributes.get("ProdgraphWorkflowDefinition", view.workflow_type)
    print(f"{view.workflow_id}: {view.status} ({definition})")
    for node in view.nodes:
        error = f"  {node.error['code']}: {node.error['message']}" if node.error else ""
        progress = f"  [{node.progress}]" if node.progress else ""
        reused = " (reused)" if node.reused else ""
        print(
            f"[{SYMBOLS.get(node.status, '?')}] {node.id:<16} {node.module:<26} {node.status:<17} "
            f"attempts {node.attempts}{reused}{error}{progress}"
        )
        if node.status == "awaiting_operator":
            run, node_id = shlex.quote(view.workflow_id), shlex.quote(node.id)
            print(f"      repair: prodgraph runs retry {run} {node_id}")
            print(f"          or: prodgraph runs skip {run} {node_id} [--output FILE.json]")
    if view.error:
        print(f"FAILED: {view.error['code']}: {view.error['message']}")
    print(f"  temporal: {view.temporal_ui or 'no UI configured'}")
    return 0


def _runs_retry(args: argparse.Namespace) -> int:
    from prodgraph.operations import retry_node

    params = _params(args.param)
    state = _in_session(lambda session: retry_node(session, args.run, args.node, params, args.timeout))
    return _node_action(args, "retry", state)


def _runs_skip(args: argparse.Namespace) -> int:
    from prodgraph.operations import skip_node

    output = _read_json(args.output) if args.output else None
    if output is not None and not isinstance(output, dict):
        raise ProdgraphError(f"{args.output}: a node's output is a JSON object", field="output")
    state = _in_session(lambda session: skip_node(session, args.run, args.node, output))
    return _node_action(args, "skip", state)


def _node_action(args: argparse.Namespace, action: str, state: Any) -> int:
    """Print what became of the node an operator action named."""
    if args.json:
        document = {
            "workflow_id": args.run,
            "node_id": args.node,
            "action": action,
            "node": state.model_dump(mode="json"),
        }
        print(json.dumps(document))
    else:
        print(f"{action}: node {args.node} of {args.run} is now {state.status}")
    return 0


def _runs_abort(args: argparse.Namespace) -> int:
    from prodgraph.operations import abort_run

    status = _in_session(lambda session: abort_run(session, args.run, args.reason))
    if args.json:
        print(json.dumps({"workflow_id": args.run, "action": "abort", "status": status}))
    else:
        print(f"abort: run {args.run} is {status}")
    return 0


def _runs_rerun(args: argparse.Namespace) -> int:
    from prodgraph.operations import rerun

    params = _node_params(args.param)

    async def start(session: TemporalSession) -> tuple[str, str | None]:
        new_id = await rerun(session, args.run, from_node=args.from_node, params=params)
        return new_id, session.workflow_url(new_id)

    new_id, temporal_ui = _in_session(start)
    if args.json:
        print(json.dumps({"workflow_id": new_id, "rerun_of": args.run, "temporal_ui": temporal_ui}))
    else:
        print(new_id)
        print(f"  temporal: {temporal_ui or 'no UI configured'}")
    return 0


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ProdgraphError(f"cannot read {path}: {error}") from None


def _fail(args: argparse.Namespace, error: dict) -> int:
    if getattr(args, "json", False):
        print(failure_report(error).model_dump_json())
    else:
        print(f"error: {error['message']}", file=sys.stderr)
    return 1


# --- rollout and parity: output types, the gate, shadow comparisons -----------------------------


def _add_rollout_commands(commands: Any, output_types: Any) -> None:
    listing = output_types.add_parser("list", help="every output type: rollout, workflow, parity")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_output_types_list)
    show = output_types.add_parser("show", help="one output type with its parity gate")
    show.add_argument("slug")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_output_types_show)
    rollout = output_types.add_parser(
        "set-rollout", help="move an output type to legacy, shadow or graph, through the parity gate"
    )
    rollout.add_argument("slug")
    rollout.add_argument("rollout", choices=["legacy", "shadow", "graph"])
    rollout.add_argument("--workflow", metavar="ID[@VERSION]", help="the workflow to link")
    rollout.add_argument("--force", action="store_true", help="move to graph although the gate is closed")
    rollout.add_argument("--reason", help="why the gate is forced (recorded)")
    rollout.add_argument("--json", action="store_true")
    rollout.set_defaults(handler=_set_rollout)
    parity = commands.add_parser("parity", help="shadow comparisons").add_subparsers(
        required=True, metavar="ACTION"
    )
    report = parity.add_parser("show", help="one comparison, by report id or order-line run")
    report.add_argument("run")
    report.add_argument("--json", action="store_true")
    report.set_defaults(handler=_parity_show)
    calibrate = parity.add_parser(
        "calibrate", help="measure an output type's noise: its legacy route twice, two seeds"
    )
    calibrate.add_argument("output_type")
    calibrate.add_argument("step_file", type=Path)
    calibrate.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="invocation parameter (repeat)"
    )
    calibrate.add_argument("--json", action="store_true")
    calibrate.set_defaults(handler=_parity_calibrate)
    summary = parity.add_parser("summary", help="per output type: comparisons, share equivalent, gate")
    summary.add_argument("--output-type")
    summary.add_argument("--json", action="store_true")
    summary.set_defaults(handler=_parity_summary)


def _output_types_list(args: argparse.Namespace) -> int:
    from sqlmodel import select

    from persistence.tables import OutputType

    with _database() as db:
        rows = list(db.exec(select(OutputType).order_by(OutputType.slug)))
        listed = [
            {
                "slug": row.slug,
                "rollout": str(row.rollout),
                "workflow_id": row.workflow_id,
                "active": row.is_active,
            }
            for row in rows
        ]
    if args.json:
        print(json.dumps(listed))
    for item in listed if not args.json else []:
        print(f"{item['slug']:<32} {item['rollout']:<7} {item['workflow_id'] or '-'}")
    return 0


def _output_types_show(args: argparse.Namespace) -> int:
    from output_profiles.models import OutputTypeBase
    from persistence.repositories import require_output_type
    from prodgraph.rollout import parity_gate

    settings = get_settings()
    with _database() as db:
        row = require_output_type(db, args.slug)
        gate = parity_gate(db, row.slug, settings.parity_gate_runs)
        profile = OutputTypeBase.model_validate(
            {name: getattr(row, name) for name in OutputTypeBase.model_fields}
        )
        shown = {"output_type": profile.model_dump(mode="json"), "gate": gate.model_dump(mode="json")}
    if args.json:
        print(json.dumps(shown))
    else:
        print(f"{row.slug}: {row.rollout}, workflow {row.workflow_id or '-'}")
        print(f"  gate {'open' if gate.open else 'closed'}: {gate.reason}")
    return 0


def _set_rollout(args: argparse.Namespace) -> int:
    from output_profiles.models import Rollout
    from prodgraph.rollout import set_rollout
    from registry.catalog import default_catalog

    workflow_id, version = _workflow_ref(args.workflow)
    settings = get_settings()
    with _database() as db:
        row, gate = set_rollout(
            db,
            default_catalog(),
            args.slug,
            Rollout(args.rollout),
            actor=os.environ.get("USER") or "cli",
            required=settings.parity_gate_runs,
            workflow_id=workflow_id,
            workflow_version=version,
            force=args.force,
            reason=args.reason,
        )
        changed = {"slug": row.slug, "rollout": str(row.rollout), "workflow_id": row.workflow_id}
    if args.json:
        print(json.dumps({**changed, "gate": gate.model_dump(mode="json")}))
    else:
        print(f"{changed['slug']}: {changed['rollout']} (workflow {changed['workflow_id'] or '-'})")
        print(f"  gate {'open' if gate.open else 'closed'}: {gate.reason}")
    return 0


def _workflow_ref(text: str | None) -> tuple[str | None, int | None]:
    """ID[@VERSION] as (id, version)."""
    if text is None:
        return None, None
    workflow_id, _, version = text.partition("@")
    if version and not version.isdigit():
        raise ProdgraphError(f"--workflow {text!r}: the version after @ is a number", field="workflow")
    return workflow_id, int(version) if version else None


def _parity_show(args: argparse.Namespace) -> int:
    from prodgraph.parity import find_report

    with _database() as db:
        view = find_report(db, args.run)
    if args.json:
        print(view.model_dump_json())
        return 0
    print(f"{view.id}: {view.verdict} ({view.output_type}, {view.order_line_workflow_id})")
    print(f"  {view.report.get('reason', '')}")
    for difference in view.report.get("differences", []):
        causes = "; ".join(difference.get("explained_by", [])) or "no parameter differs"
        print(f"  {difference['artifact']} {difference['metric']}: {causes}")
    return 0


def _parity_calibrate(args: argparse.Namespace) -> int:
    from prodgraph.parity import calibration_input, start_calibration
    from prodgraph.production import stage_input
    from registry.catalog import default_catalog

    async def calibrate(session: TemporalSession) -> Any:
        step_path = str(stage_input(session.settings, args.step_file))
        with _database() as db:
            calibration = calibration_input(
                db, default_catalog(), args.output_type, step_path, session.task_queues(), _invocation(args)
            )
        handle = await start_calibration(session, calibration)
        print(f"calibrating in {handle.id}: {session.workflow_url(handle.id) or ''}", file=sys.stderr)
        return await handle.result()

    result = _in_session(calibrate)
    thresholds = result.thresholds.model_dump(mode="json")
    if args.json:
        print(json.dumps({"report": result.report_id, "thresholds": thresholds}))
    else:
        print(f"{args.output_type}: noise measured in {result.report_id} ({result.compared.report.verdict})")
        for name, value in thresholds.items():
            print(f"  {name:<20} {value}")
    return 0


def _parity_summary(args: argparse.Namespace) -> int:
    from sqlmodel import select

    from persistence.tables import OutputType
    from prodgraph.rollout import parity_gate

    settings = get_settings()
    with _database() as db:
        slugs = [args.output_type] if args.output_type else list(db.exec(select(OutputType.slug)))
        gates = [parity_gate(db, slug, settings.parity_gate_runs) for slug in sorted(slugs)]
    if args.json:
        print(json.dumps([gate.model_dump(mode="json") for gate in gates]))
        return 0
    for gate in gates:
        share = "-" if gate.equivalent_share is None else f"{gate.equivalent_share:.0%}"
        state = "open" if gate.open else "closed"
        print(f"{gate.output_type:<32} {gate.compared:>4} compared, {share:>4} equivalent, gate {state}")
    return 0


if __name__ == "__main__":
    main()
