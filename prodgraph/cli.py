"""The `prodgraph` command line: render, intake, order, the registry, legacy import, servers."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from core.errors import ProdgraphError
from core.settings import get_settings
from core.temporal import TemporalSession
from core.vocabulary import FAMILIES, Engine
from prodgraph.reports import RunReport, failure_report

Report = TypeVar("Report", bound=RunReport)

SYMBOLS = {
    "running": "…",
    "completed": "✓",
    "failed": "✗",
    "awaiting_operator": "?",
    "skipped": "-",
    "pending": " ",
}


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
    server = commands.add_parser("server", help="the embedded Temporal dev server")
    server.add_argument("action", choices=["start", "stop", "status"])
    server.set_defaults(handler=_server)
    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=_serve)
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


def _invocation(args: argparse.Namespace) -> dict[str, Any]:
    return {
        key: getattr(args, key, None)
        for key in ("width", "height", "samples", "engine", "transparent_background")
        if getattr(args, key, None) is not None
    }


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
        )
    )
    return _answer(args, report, headline=f"{report.route} route: {report.status}")


def _produce(args: argparse.Namespace) -> int:
    from prodgraph.production import produce

    def progress(workflow_id: str, node_id: str, state: Any) -> None:
        detail = f"  {state.error.code}: {state.error.message}" if state.error else ""
        print(
            f"[{SYMBOLS.get(state.status, '?')}] {workflow_id} {node_id}: {state.status}{detail}",
            file=sys.stderr if args.json else sys.stdout,
            flush=True,
        )

    report = _in_session(
        lambda session: produce(
            session,
            args.step_file,
            args.out,
            render=args.render,
            invocation_params=_invocation(args),
            on_progress=progress,
        )
    )
    return _answer(args, report)


def _in_session(use_case: Callable[[TemporalSession], Awaitable[Report]]) -> Report:
    """Run a use case on the configured (or embedded) Temporal, logs going to the state folder."""
    from prodgraph.runs import temporal_session

    settings = get_settings()
    _log_to_file(settings.state_dir / "prodgraph.log")

    async def run() -> Report:
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
        print(f"FAILED at node {error.node_id}: {error.code}: {error.message}")
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


def _import_output_types(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from persistence.engine import make_engine, prepare_database
    from prodgraph.legacy_import import import_export
    from registry.catalog import default_catalog

    records = _read_json(args.export)
    if not isinstance(records, list):
        raise ProdgraphError(f"{args.export}: a legacy export is a JSON list of output types")
    engine = make_engine(get_settings())
    prepare_database(engine, default_catalog())
    with Session(engine) as session:
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


if __name__ == "__main__":
    main()
