"""The workflow validator: one bad-graph fixture per problem code, and properties of random graphs."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import registry.validation
from registry.catalog import default_catalog
from registry.starters import STARTER_DIR
from registry.validation import (
    DEFAULT_LIMITS,
    MAX_EDGES,
    MAX_NODES,
    MAX_STRING,
    DefinitionLimits,
    Problem,
    ValidationReport,
    ancestors_of,
    nearest_producers,
    nodes_on_cycles,
    parents_of,
    topological_order,
    validate_document,
)

BAD_GRAPHS = Path(__file__).parent / "bad_graphs"
EXPECTED: dict[str, dict[str, Any]] = json.loads((BAD_GRAPHS / "expected.json").read_text())
CAD_LEAVES = ("cad.extract_objects", "cad.export_glb", "cad.compute_bbox")
ROOTS = {"cad_file": "cad.resolve_step_path", "order_line": "render.blender_still"}
LEAVES = {"cad_file": CAD_LEAVES, "order_line": ("render.blender_still",)}
NODE_IDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=10)
FLAWS = ("back_edge", "dangling", "unknown_step", "bad_params", "second_root", "still", "isolated")
PROPERTY_SETTINGS = settings(max_examples=80, deadline=None)

Document = dict[str, Any]


def validate(document: Document) -> ValidationReport:
    """Validate through a JSON round trip, as the API and CLI do."""
    return validate_document(json.loads(json.dumps(document)), default_catalog())


def load_fixture(name: str) -> Document:
    """A bad-graph fixture by file name."""
    return json.loads((BAD_GRAPHS / name).read_text())


# --- bad-graph fixtures ---------------------------------------------------------------------
#
# Convention: each fixture's report holds exactly ONE problem, the one expected.json names:
# its code, its node id (null for graph-level codes) and, where given, its path. It is an
# error in an invalid report unless expected.json says "severity": "warning", in which case
# the report is valid, has no errors, and that is its only warning. So a fixture proves its
# code can be raised alone, without collateral codes from other checks.


def test_every_fixture_file_has_an_expectation() -> None:
    files = {path.name for path in BAD_GRAPHS.glob("*.json")} - {"expected.json"}
    assert files == set(EXPECTED)


def test_every_code_the_validator_emits_has_a_fixture() -> None:
    source = Path(registry.validation.__file__).read_text()
    emitted = set(re.findall(r'code="(\w+)"', source))
    assert emitted == {expectation["code"] for expectation in EXPECTED.values()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_graph_yields_exactly_its_problem(name: str) -> None:
    expectation = EXPECTED[name]
    report = validate(load_fixture(name))
    if expectation.get("severity", "error") == "warning":
        assert report.valid and report.errors == []
        problems = report.warnings
    else:
        assert not report.valid and report.warnings == []
        problems = report.errors
    assert len(problems) == 1, problems
    problem = problems[0]
    assert (problem.code, problem.node_id) == (expectation["code"], expectation["node_id"])
    if "path" in expectation:
        assert problem.path == expectation["path"]
    assert problem.message


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"unknown_step.json"}))
def test_fixtures_name_only_known_steps(name: str) -> None:
    steps = {node["step"] for node in load_fixture(name)["nodes"] if "step" in node}
    assert steps <= set(default_catalog().specs)


def test_too_many_nodes_fixture_is_one_over_the_limit() -> None:
    assert len(load_fixture("too_many_nodes.json")["nodes"]) == MAX_NODES + 1


# --- starters and focused cases -------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(STARTER_DIR.glob("*.json")), ids=lambda path: path.name)
def test_starter_validates_without_problems(path: Path) -> None:
    report = validate(json.loads(path.read_text()))
    assert report.valid, report.errors
    assert report.warnings == []
    assert report.catalog_version == default_catalog().version


def definition(
    family: str, nodes: list[tuple[str, str]], edges: list[tuple[str, str]], **extra: Any
) -> Document:
    """A definition document from (id, step) nodes and (source, target) edges."""
    return {
        "id": "inline",
        "version": 1,
        "family": family,
        "name": "inline",
        **extra,
        "nodes": [{"id": node_id, "step": step} for node_id, step in nodes],
        "edges": [{"source": source, "target": target} for source, target in edges],
    }


def two_stills(bad_params: dict[str, Any]) -> Document:
    """An order_line graph whose second node carries the given params."""
    document = definition(
        "order_line", [("front", "render.blender_still"), ("top", "render.blender_still")], [("front", "top")]
    )
    document["nodes"][1]["params"] = bad_params
    return document


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"width": -1}, "$.nodes[1].params.width"),
        ({"sharpness": 3}, "$.nodes[1].params.sharpness"),
        ({"engine": "povray"}, "$.nodes[1].params.engine"),
    ],
)
def test_invalid_params_path_points_at_the_param(params: dict[str, Any], path: str) -> None:
    report = validate(two_stills(params))
    assert [(p.code, p.node_id, p.path) for p in report.errors] == [("invalid_params", "top", path)]


def test_every_bad_param_is_reported_at_once() -> None:
    report = validate(two_stills({"width": -1, "height": 0, "bogus": True}))
    assert {p.path for p in report.errors} == {
        "$.nodes[1].params.width",
        "$.nodes[1].params.height",
        "$.nodes[1].params.bogus",
    }


def test_every_problem_is_reported_at_once() -> None:
    document = load_fixture("unknown_step.json")
    document["nodes"].append({"id": "still", "step": "render.blender_still", "params": {"width": -1}})
    document["edges"] += [{"source": "extract", "target": "still"}, {"source": "extract", "target": "ghost"}]
    codes = {problem.code for problem in validate(document).errors}
    assert {"unknown_step", "dangling_edge", "invalid_params", "mixed_family"} <= codes


def test_a_non_string_node_id_is_a_shape_error() -> None:
    document = load_fixture("invalid_params.json")
    document["nodes"][0]["id"] = 7
    report = validate(document)
    assert [(p.code, p.node_id, p.path) for p in report.errors] == [("invalid_shape", None, "$.nodes[0].id")]


def test_a_duplicated_producer_id_is_not_an_ambiguous_input() -> None:
    document = definition(
        "cad_file",
        [
            ("resolve", "cad.resolve_step_path"),
            ("resolve", "cad.resolve_step_path"),
            ("glb", "cad.export_glb"),
        ],
        [("resolve", "glb")],
    )
    assert [p.code for p in validate(document).errors] == ["duplicate_node_id"]


def test_a_foreign_entry_is_an_error_even_in_a_migration_graph() -> None:
    document = load_fixture("wrong_family_entry.json") | {"migration_graph": True}
    report = validate(document)
    assert [(p.code, p.node_id) for p in report.errors] == [("wrong_family_entry", "extract")]


# --- properties of random graphs ------------------------------------------------------------


@st.composite
def valid_dags(draw: st.DrawFn) -> Document:
    """A family's root node, then leaves that each hang off a non-empty set of earlier nodes."""
    family = draw(st.sampled_from(sorted(ROOTS)))
    ids = draw(st.lists(NODE_IDS, min_size=1, max_size=9, unique=True))
    steps = [ROOTS[family]] + [draw(st.sampled_from(LEAVES[family])) for _ in ids[1:]]
    edges = []
    for position, node_id in enumerate(ids[1:], start=1):
        parents = draw(st.sets(st.sampled_from(ids[:position]), min_size=1))
        edges += [{"source": parent, "target": node_id} for parent in sorted(parents)]
    nodes = [{"id": node_id, "step": step} for node_id, step in zip(ids, steps, strict=True)]
    return {"id": "random", "version": 1, "family": family, "name": "random", "nodes": nodes, "edges": edges}


def edge_pairs(document: Document) -> list[tuple[str, str]]:
    """The document's edges as (source, target) pairs."""
    return [(edge["source"], edge["target"]) for edge in document["edges"]]


def error_codes(report: ValidationReport) -> set[str]:
    """The distinct error codes of a report."""
    return {problem.code for problem in report.errors}


@PROPERTY_SETTINGS
@given(valid_dags())
def test_acyclic_graphs_with_resolvable_inputs_validate(document: Document) -> None:
    report = validate(document)
    assert report.valid, report.errors
    assert report.warnings == []


@PROPERTY_SETTINGS
@given(valid_dags(), st.data())
def test_a_back_edge_is_a_cycle(document: Document, data: st.DataObject) -> None:
    node_ids = [node["id"] for node in document["nodes"]]
    tail = data.draw(st.sampled_from(node_ids))
    upstream = sorted(ancestors_of(tail, edge_pairs(document)) | {tail})
    head = data.draw(st.sampled_from(upstream))
    document["edges"].append({"source": tail, "target": head})
    report = validate(document)
    assert error_codes(report) == {"cycle"}
    assert {problem.node_id for problem in report.errors} <= set(upstream)


@PROPERTY_SETTINGS
@given(valid_dags(), NODE_IDS, st.booleans(), st.data())
def test_a_dangling_edge_is_caught(
    document: Document, ghost: str, outgoing: bool, data: st.DataObject
) -> None:
    node_ids = [node["id"] for node in document["nodes"]]
    ghost = ghost if ghost not in node_ids else ghost + "!"
    real = data.draw(st.sampled_from(node_ids))
    source, target = (ghost, real) if outgoing else (real, ghost)
    document["edges"].append({"source": source, "target": target})
    report = validate(document)
    assert [(p.code, p.node_id) for p in report.errors] == [("dangling_edge", ghost)]


@PROPERTY_SETTINGS
@given(valid_dags(), st.text(min_size=1, max_size=20), st.data())
def test_an_unknown_step_is_caught(document: Document, step: str, data: st.DataObject) -> None:
    node = data.draw(st.sampled_from(document["nodes"]))
    node["step"] = "x." + step
    report = validate(document)
    assert ("unknown_step", node["id"]) in {(p.code, p.node_id) for p in report.errors}
    # Losing a producer may leave its consumers unbound; nothing else may follow.
    assert error_codes(report) <= {"unknown_step", "unresolved_input"}


@st.composite
def random_dags(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]]]:
    """Unique ids and edges that only point forward in a hidden random ranking."""
    ids = draw(st.lists(NODE_IDS, min_size=1, max_size=12, unique=True))
    ranked = draw(st.permutations(ids))
    pairs = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1 :]]
    edges = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    return ids, edges


@PROPERTY_SETTINGS
@given(random_dags())
def test_topological_order_respects_every_edge(dag: tuple[list[str], list[tuple[str, str]]]) -> None:
    ids, edges = dag
    order = topological_order(ids, edges)
    assert order is not None and sorted(order) == sorted(ids)
    position = {node_id: index for index, node_id in enumerate(order)}
    assert all(position[source] < position[target] for source, target in edges)
    assert order == topological_order(list(reversed(ids)), list(reversed(edges)))


@PROPERTY_SETTINGS
@given(random_dags(), st.data())
def test_topological_order_refuses_a_cycle(
    dag: tuple[list[str], list[tuple[str, str]]], data: st.DataObject
) -> None:
    ids, edges = dag
    tail = data.draw(st.sampled_from(ids))
    head = data.draw(st.sampled_from(sorted(ancestors_of(tail, edges) | {tail})))
    assert topological_order(ids, [*edges, (tail, head)]) is None


@st.composite
def flawed_dags(draw: st.DrawFn) -> Document:
    """A valid DAG, perhaps given a few flaws so that reports have something in them."""
    document = draw(valid_dags())
    node_ids = [node["id"] for node in document["nodes"]]
    for flaw in sorted(draw(st.lists(st.sampled_from(FLAWS), max_size=3, unique=True))):
        if flaw == "back_edge":
            tail = draw(st.sampled_from(node_ids))
            document["edges"].append({"source": tail, "target": node_ids[0]})
        elif flaw == "dangling":
            document["edges"].append({"source": draw(st.sampled_from(node_ids)), "target": "ghost!"})
        elif flaw == "unknown_step":
            draw(st.sampled_from(document["nodes"]))["step"] = "cad.nonexistent"
        elif flaw == "bad_params":
            draw(st.sampled_from(document["nodes"]))["params"] = {"bogus": 1, "width": -1}
        elif flaw == "second_root":
            document["nodes"].append({"id": "root!", "step": ROOTS[document["family"]]})
            document["edges"] += [{"source": "root!", "target": leaf} for leaf in node_ids[1:]]
        elif flaw == "still":
            document["nodes"].append({"id": "still!", "step": "render.blender_still"})
            for parent in sorted(draw(st.sets(st.sampled_from(node_ids)))):
                document["edges"].append({"source": parent, "target": "still!"})
        else:
            document["nodes"].append({"id": "isolated!", "step": "cad.compute_bbox"})
    return document


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every list (nodes, edges) and every object's keys reordered."""
    if isinstance(value, dict):
        items = [(key, shuffled(item, rng)) for key, item in value.items()]
        rng.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        elements = [shuffled(item, rng) for item in value]
        rng.shuffle(elements)
        return elements
    return value


def placed(problem: Problem, document: Document) -> tuple[str, str | None, str | None, str]:
    """A problem with list positions in its path replaced by what sits there."""

    def name(match: re.Match[str]) -> str:
        kind, position = match.group(1), int(match.group(2))
        item = document[kind][position]
        return f"$.{kind}[{item['id'] if kind == 'nodes' else (item['source'], item['target'])}]"

    path = re.sub(r"^\$\.(nodes|edges)\[(\d+)\]", name, problem.path) if problem.path else None
    return problem.code, problem.node_id, path, problem.message


def placed_report(document: Document) -> tuple[bool, list, list, str | None]:
    """The report of a document, with paths independent of list positions."""
    report = validate(document)
    return (
        report.valid,
        sorted(placed(p, document) for p in report.errors),
        sorted(placed(p, document) for p in report.warnings),
        report.catalog_version,
    )


@PROPERTY_SETTINGS
@given(flawed_dags(), st.randoms(use_true_random=False))
def test_report_does_not_depend_on_list_or_key_order(document: Document, rng: random.Random) -> None:
    assert placed_report(shuffled(document, rng)) == placed_report(document)


# --- limits, and the linear passes against the quadratic definitions they replace ------------


def test_too_many_edges_fixture_is_one_over_the_limit() -> None:
    assert len(load_fixture("too_many_edges.json")["edges"]) == MAX_EDGES + 1


def test_a_graph_far_over_the_limits_is_refused_unread() -> None:
    # Entries that are not nodes at all: were they parsed, each would be an invalid_shape.
    document = {"id": "huge", "version": 1, "family": "cad_file", "name": "huge"}
    document |= {"nodes": [7] * (50 * MAX_NODES), "edges": [7] * (50 * MAX_EDGES)}
    report = validate_document(document, default_catalog())
    assert [(p.code, p.path) for p in report.errors] == [
        ("too_many_edges", "$.edges"),
        ("too_many_nodes", "$.nodes"),
    ]
    assert str(50 * MAX_NODES) in report.errors[1].message and str(MAX_NODES) in report.errors[1].message


def test_limits_can_be_raised_per_call() -> None:
    document = load_fixture("too_many_nodes.json")
    roomy = DefinitionLimits(max_nodes=MAX_NODES + 1)
    report = validate_document(document, default_catalog(), roomy)
    assert "too_many_nodes" not in error_codes(report)


@pytest.mark.parametrize(
    ("where", "path"),
    [
        (lambda d: d["nodes"][1].update(step="cad." + "x" * 200), "$.nodes[1].step"),
        (lambda d: d["edges"][0].update(source="r" * 200), "$.edges[0].source"),
        (lambda d: d.update(name="n" * 1000), "$.name"),
    ],
)
def test_over_long_strings_of_the_definition_are_shape_errors_with_their_place(where, path: str) -> None:
    document = load_fixture("unresolved_input.json")
    where(document)
    report = validate(document)
    problem = next(p for p in report.errors if p.path == path)
    assert problem.code == "invalid_shape" and "at most" in problem.message
    if path.startswith("$.nodes"):
        assert problem.node_id == "extract"


def test_a_param_string_over_the_limit_names_node_and_param() -> None:
    document = two_stills({"template": "t" * (MAX_STRING + 1)})
    report = validate(document)
    assert [(p.code, p.node_id, p.path) for p in report.errors] == [
        ("string_too_long", "top", "$.nodes[1].params.template")
    ]


def reference_nearest(node_id: str, field: str, producers: dict[str, list[str]], edges) -> list[str]:
    """The nearest producers as the validator used to find them: ancestors per node, quadratic."""
    upstream = ancestors_of(node_id, edges)
    candidates = sorted(producer for producer in producers.get(field, []) if producer in upstream)
    return [
        c
        for c in candidates
        if not any(c in ancestors_of(other, edges) for other in candidates if other != c)
    ]


@PROPERTY_SETTINGS
@given(random_dags(), st.data())
def test_nearest_producers_match_the_quadratic_definition(
    dag: tuple[list[str], list[tuple[str, str]]], data: st.DataObject
) -> None:
    ids, edges = dag
    makers = {field: data.draw(st.sets(st.sampled_from(ids))) for field in ("a", "b")}
    order = topological_order(ids, edges)
    assert order is not None
    wanted = {node_id: ["a", "b"] for node_id in ids}
    found = nearest_producers(order, parents_of(ids, edges), makers, wanted)
    as_lists = {field: sorted(nodes) for field, nodes in makers.items()}
    for node_id in ids:
        for field in ("a", "b"):
            assert list(found[node_id][field]) == reference_nearest(node_id, field, as_lists, edges)


@PROPERTY_SETTINGS
@given(random_dags(), st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=4))
def test_nodes_on_cycles_are_those_upstream_of_themselves(dag, extra: list[tuple[int, int]]) -> None:
    ids, edges = dag
    edges = edges + [(ids[a % len(ids)], ids[b % len(ids)]) for a, b in extra if a % len(ids) != b % len(ids)]
    expected = {node_id for node_id in ids if node_id in ancestors_of(node_id, edges)}
    assert nodes_on_cycles(ids, edges) == expected


def test_the_families_state_the_limits_validation_enforces() -> None:
    rules = " ".join(default_catalog().families["order_line"].validation_rules)
    for limit in (MAX_NODES, MAX_EDGES, MAX_STRING, DEFAULT_LIMITS.max_values, DEFAULT_LIMITS.max_depth):
        assert f"{limit} " in rules
