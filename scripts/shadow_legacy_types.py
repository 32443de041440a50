"""Run every imported legacy output type in shadow mode on a small fixture, at small sizes, and
print each comparison's verdict in a table (the evidence for moving a product to the graph).

Offline: an embedded Temporal dev server and in-process workers in a temporary state folder. The
legacy export is imported as the API and the CLI import it; each type that maps is moved to
`shadow` (linked to its artifact kind's starter) and one order line of it runs on the shared
red-cube fixture at 96×72, 4 samples, 4 frames. Types the adapter cannot read are listed with the
key it names. Usage:

    .venv/bin/python scripts/shadow_legacy_types.py [--export PATH] [--step PATH] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlmodel import Session  # noqa: E402

from core.errors import ProdgraphError  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.vocabulary import ArtifactKind  # noqa: E402
from output_profiles.dispatch_plan import OrderLine  # noqa: E402
from output_profiles.models import Rollout  # noqa: E402
from persistence.engine import make_engine, prepare_database  # noqa: E402
from prodgraph.embedded import stop_dev_server  # noqa: E402
from prodgraph.legacy_import import import_export  # noqa: E402
from prodgraph.orders import dispatch_order_line, start_order_line  # noqa: E402
from prodgraph.production import stage_input  # noqa: E402
from prodgraph.rollout import set_rollout  # noqa: E402
from prodgraph.runs import temporal_session  # noqa: E402
from registry.catalog import default_catalog  # noqa: E402

SHARED = Path(os.environ.get("PRODGRAPH_SHARED_DIR", REPO.parent / "shared"))
EXPORT = SHARED / "fixtures" / "legacy" / "output_types_export.json"
STEP = SHARED / "fixtures" / "step" / "red_cube_blue_cylinder.step"
SMALL = {"width": 96, "height": 72, "samples": 4}
#: Invocation params per artifact kind: only what the kind's render takes.
PARAMS = {ArtifactKind.turntable_video: {**SMALL, "frame_count": 4}}


async def run(export: Path, step: Path) -> list[dict[str, Any]]:
    """One shadow order line per imported type: its verdict row."""
    catalog = default_catalog()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="prodgraph-shadow-") as state:
        settings = Settings(state_dir=Path(state))
        engine = make_engine(settings)
        prepare_database(engine, catalog)
        with Session(engine) as db:
            report = import_export(db, json.loads(export.read_text()))
        async with temporal_session(settings) as session:
            staged = str(stage_input(settings, step))
            for record in report.records:
                if record.error or not record.slug:
                    rows.append(
                        {
                            "slug": record.slug or "-",
                            "verdict": f"not imported: {record.error.key if record.error else '-'}",
                        }
                    )
                    continue
                rows.append(await shadow(session, engine, catalog, record.slug, staged))
        engine.dispose()
        stop_dev_server(Path(state))
    return rows


async def shadow(session: Any, engine: Any, catalog: Any, slug: str, step_path: str) -> dict[str, Any]:
    """Move one type to shadow and run one order line of it: its row."""
    try:
        with Session(engine) as db:
            row, _ = set_rollout(db, catalog, slug, Rollout.shadow, actor="script", required=5)
            kind = ArtifactKind(row.artifact_kinds[0]) if row.artifact_kinds else None
            params = PARAMS.get(kind, SMALL) if kind else SMALL
            _, plan = dispatch_order_line(db, catalog, slug, params)
        order = OrderLine(order_line_id=f"shadow-{slug}", step_path=step_path, invocation_params=params)
        result = await (await start_order_line(session, plan, order, slug)).result()
    except ProdgraphError as refused:
        return {"slug": slug, "verdict": f"refused: {refused.code}: {refused.message}"}
    parity = result.shadow.parity if result.shadow else None
    first = parity.differences[0] if parity and parity.differences else None
    return {
        "slug": slug,
        "kind": str(kind) if kind else "-",
        "legacy": result.status,
        "graph": result.shadow.status if result.shadow else "-",
        "verdict": parity.verdict
        if parity
        else f"no comparison: {result.shadow.parity_error if result.shadow else ''}",
        "first_difference": f"{first.artifact} {first.metric}: {'; '.join(first.explained_by) or '-'}"
        if first
        else "",
    }


def main() -> None:
    """Run, then print the table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--export", type=Path, default=EXPORT)
    parser.add_argument("--step", type=Path, default=STEP)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = asyncio.run(run(args.export, args.step))
    print(f"{'output type':<28} {'kind':<18} {'legacy':<10} {'graph':<10} {'verdict':<14} first difference")
    for row in rows:
        print(
            f"{row['slug']:<28} {row.get('kind', '-'):<18} {row.get('legacy', '-'):<10} "
            f"{row.get('graph', '-'):<10} {row['verdict']:<14} {row.get('first_difference', '')}"
        )
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
