"""Validation of workflow definitions: every problem at once, each with a code, place and words.

Every pass is linear in the graph's size: a definition over the node or edge limit is refused
before anything else looks at it, edges are deduplicated through a set, parents and children are
adjacency maps, the graph is sorted once, cycles are found by one strongly-connected-components
pass, and each consumed input's nearest producer is carried down the topological order.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from registry.catalog import Catalog
from registry.definition import WorkflowDefinition

MAX_NODES = 200
MAX_EDGES = 1000
MAX_VALUES = 1000
MAX_DEPTH = 8
MAX_STRING = 4096


@dataclass(frozen=True)
class DefinitionLimits:
    """How large a definition may be; each limit is named in the error that enforces it."""

    max_nodes: int = MAX_NODES
    """Nodes in one definition."""
    max_edges: int = MAX_EDGES
    """Edges in one definition (duplicates included: they are read before being merged)."""
    max_values: int = MAX_VALUES
    """JSON values (objects, arrays and scalars) in one node's params, and again in its ui."""
    max_depth: int = MAX_DEPTH
    """Nesting of objects and arrays in one node's params or ui ({"a": 1} is depth 1)."""
    max_string: int = MAX_STRING
    """Characters of one string (key or value) in a node's params or ui."""


DEFAULT_LIMITS = DefinitionLimits()


class Problem(BaseModel):
    """One validation finding."""

    model_config = ConfigDict(extra="forbid")

    code: str
    node_id: str | None = None
    path: str | None = None
    message: str


class ValidationReport(BaseModel):
    """The validator's answer: errors block a run, warnings do not."""

    model_config = ConfigDict(extra="forbid")

    valid: bool
    errors: list[Problem]
    warnings: list[Problem]
    catalog_version: str | None = None


def validate_document(
    document: Any, catalog: Catalog, limits: DefinitionLimits = DEFAULT_LIMITS
) -> ValidationReport:
    """Validate raw JSON: its size first (nothing over the limits is parsed), the shape, the graph."""
    if isinstance(document, Mapping):
        oversized = _size_problems(document.get("nodes"), document.get("edges"), limits)
        if oversized:
            return _report(oversized, [], catalog)
    try:
        definition = WorkflowDefinition.model_validate(document)
    except ValidationError as exc:
        errors = [
            Problem(
                code="invalid_shape",
                path=_json_path(error["loc"]),
                node_id=_node_id_at(document, error["loc"]),
                message=error["msg"],
            )
            for error in exc.errors()
        ]
        return _report(errors, [], catalog)
    return validate_definition(definition, catalog, limits)


def validate_definition(
    definition: WorkflowDefinition, catalog: Catalog, limits: DefinitionLimits = DEFAULT_LIMITS
) -> ValidationReport:
    """Validate a parsed definition against the catalogue and its family."""
    errors: list[Problem] = _size_problems(definition.nodes, definition.edges, limits)
    if errors:
        # Nothing else runs on a graph over the limits: each further pass would cost its size.
        return _report(errors, [], catalog)
    warnings: list[Problem] = []
    index = _index_nodes(definition, errors)
    _check_catalog_version(definition, catalog, warnings)
    if not definition.nodes:
        errors.append(
            Problem(code="empty_workflow", path="$.nodes", message="a workflow needs at least one node")
        )
    edges = _check_edges(definition, index, errors)
    parents = parents_of(index, edges)
    oversized = _check_values(definition, limits, errors)
    _check_steps(definition, catalog, parents, errors, warnings)
    order = topological_order(list(index), edges)
    if order is None:
        cycle = sorted(nodes_on_cycles(list(index), edges))
        errors.append(
            Problem(
                code="cycle",
                node_id=cycle[0] if cycle else None,
                message=f"the graph has a cycle through {', '.join(cycle)}",
            )
        )
    else:
        _check_bindings(definition, catalog, index, order, parents, errors)
    _check_params(definition, catalog, oversized, errors)
    _check_connectivity(definition, edges, warnings)
    return _report(errors, warnings, catalog)


def topological_order(node_ids: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[str] | None:
    """Kahn's algorithm, ties broken by node id (a heap); None when there is a cycle."""
    indegree = dict.fromkeys(node_ids, 0)
    children: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        children[source].append(target)
        indegree[target] += 1
    ready = [node_id for node_id, degree in indegree.items() if degree == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        current = heapq.heappop(ready)
        order.append(current)
        for child in children[current]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, child)
    return order if len(order) == len(indegree) else None


def parents_of(node_ids: Iterable[str], edges: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Node id → the sources of its incoming edges (an adjacency map, built once)."""
    parents: dict[str, list[str]] = {node_id: [] for node_id in node_ids}
    for source, target in edges:
        parents[target].append(source)
    return parents


def ancestors_of(node_id: str, edges: list[tuple[str, str]]) -> set[str]:
    """Every node upstream of node_id (one walk; for a single node, not for every node)."""
    parents: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        parents[target].add(source)
    seen: set[str] = set()
    stack = list(parents[node_id])
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(parents[current])
    return seen


def nodes_on_cycles(node_ids: Iterable[str], edges: Iterable[tuple[str, str]]) -> set[str]:
    """Nodes on some cycle: members of strongly connected components of two or more nodes
    (Tarjan's algorithm without recursion; self-loops are reported where edges are read)."""
    children: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        children[source].append(target)
    number: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cyclic: set[str] = set()
    for root in node_ids:
        if root in number:
            continue
        work = [(root, iter(children[root]))]
        number[root] = low[root] = len(number)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            child = next(pending, None)
            if child is not None:
                if child not in number:
                    number[child] = low[child] = len(number)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(children[child])))
                elif child in on_stack:
                    low[node] = min(low[node], number[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == number[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cyclic.update(component)
    return cyclic


def nearest_producers(
    order: list[str],
    parents: Mapping[str, list[str]],
    producers: Mapping[str, set[str]],
    wanted: Mapping[str, Iterable[str]],
) -> dict[str, dict[str, tuple[str, ...]]]:
    """For each node and each field it consumes, the nearest upstream nodes that produce it.

    A producer is nearest when no other producer of the field lies between it and the node; one
    is a binding, several are ambiguous, none leaves the field to the entry context. Each field's
    nearest set is carried down the topological order from the parents' sets, so the work is
    linear in nodes and edges per field; only where two different producers meet does it walk
    upward through the producers of that field to drop the shadowed ones.

    Args:
        order: every node id, in topological order.
        parents: node id → its parents.
        producers: field → the nodes whose output carries it.
        wanted: node id → the fields it consumes.
    """
    fields = {field for consumed in wanted.values() for field in consumed}
    nearest_by_field: dict[str, dict[str, tuple[str, ...]]] = {}
    for field in fields:
        makers = producers.get(field, set())
        nearest: dict[str, tuple[str, ...]] = {}
        for node_id in order:
            found: set[str] = set()
            for parent in parents[node_id]:
                if parent in makers:
                    found.add(parent)
                else:
                    found.update(nearest[parent])
            if len(found) > 1:
                found -= _upstream_producers(found, nearest)
            nearest[node_id] = tuple(sorted(found))
        nearest_by_field[field] = nearest
    return {
        node_id: {field: nearest_by_field[field][node_id] for field in consumed}
        for node_id, consumed in wanted.items()
    }


def _upstream_producers(found: set[str], nearest: Mapping[str, tuple[str, ...]]) -> set[str]:
    """Producers upstream of any of these producers: each producer's nearest set is its nearest
    upstream producers, so following those sets reaches every producer above it."""
    seen: set[str] = set()
    stack = [above for producer in found for above in nearest[producer]]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(nearest[current])
    return seen


def _index_nodes(definition: WorkflowDefinition, errors: list[Problem]) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, node in enumerate(definition.nodes):
        if node.id in index:
            errors.append(
                Problem(
                    code="duplicate_node_id",
                    node_id=node.id,
                    path=f"$.nodes[{position}].id",
                    message=f"node id {node.id!r} is used more than once",
                )
            )
        else:
            index[node.id] = position
    return index


def _check_catalog_version(definition: WorkflowDefinition, catalog: Catalog, warnings: list[Problem]) -> None:
    if definition.catalog_version and definition.catalog_version != catalog.version:
        warnings.append(
            Problem(
                code="catalog_changed",
                path="$.catalog_version",
                message=f"saved against catalogue {definition.catalog_version}; re-validated against "
                f"the current catalogue {catalog.version}",
            )
        )


def _size_problems(nodes: Any, edges: Any, limits: DefinitionLimits) -> list[Problem]:
    """too_many_nodes / too_many_edges, read from the lists' lengths alone."""
    problems = []
    if isinstance(nodes, list) and len(nodes) > limits.max_nodes:
        problems.append(
            Problem(
                code="too_many_nodes",
                path="$.nodes",
                message=f"{len(nodes)} nodes; at most {limits.max_nodes}",
            )
        )
    if isinstance(edges, list) and len(edges) > limits.max_edges:
        problems.append(
            Problem(
                code="too_many_edges",
                path="$.edges",
                message=f"{len(edges)} edges; at most {limits.max_edges}",
            )
        )
    return problems


def _check_values(
    definition: WorkflowDefinition, limits: DefinitionLimits, errors: list[Problem]
) -> set[int]:
    """Each node's params and ui within the value, depth and string limits: the positions of
    the nodes whose params broke one (their params are not validated further)."""
    oversized: set[int] = set()
    for position, node in enumerate(definition.nodes):
        for field in ("params", "ui"):
            problem = _value_problem(node.id, getattr(node, field), f"$.nodes[{position}].{field}", limits)
            if problem is not None:
                errors.append(problem)
                if field == "params":
                    oversized.add(position)
    return oversized


def _value_problem(node_id: str, value: Any, path: str, limits: DefinitionLimits) -> Problem | None:
    """The first limit a node's JSON value breaks; the walk stops there, so it never reads
    more than max_values values however large the value is."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    count = 0
    while stack:
        current, where, depth = stack.pop()
        count += 1
        if count > limits.max_values:
            return Problem(
                code="value_too_large",
                node_id=node_id,
                path=path,
                message=f"node {node_id!r}: more than {limits.max_values} values in {path}",
            )
        if isinstance(current, str) and len(current) > limits.max_string:
            return _string_too_long(node_id, where, len(current), limits)
        if not isinstance(current, dict | list):
            continue
        if depth >= limits.max_depth:
            return Problem(
                code="value_too_deep",
                node_id=node_id,
                path=where,
                message=f"node {node_id!r}: {where} nests deeper than {limits.max_depth} levels",
            )
        items = current.items() if isinstance(current, dict) else enumerate(current)
        for key, item in items:
            if isinstance(key, str) and len(key) > limits.max_string:
                return _string_too_long(node_id, where, len(key), limits)
            child = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}"
            stack.append((item, child, depth + 1))
    return None


def _string_too_long(node_id: str, path: str, length: int, limits: DefinitionLimits) -> Problem:
    return Problem(
        code="string_too_long",
        node_id=node_id,
        path=path,
        message=f"node {node_id!r}: a string of {length} characters at {path}; at most {limits.max_string}",
    )


def _check_steps(
    definition: WorkflowDefinition,
    catalog: Catalog,
    parents: Mapping[str, list[str]],
    errors: list[Problem],
    warnings: list[Problem],
) -> None:
    """Each foreign node gets exactly one code, chosen by what the author most likely got wrong.

    No node in the family: the declared family is wrong (step_not_in_family on every node).
    Otherwise a foreign entry node would receive another family's entry context
    (wrong_family_entry, an error even in a migration graph), and a foreign node further
    down makes the graph mixed (mixed_family: an error, a warning in a migration graph).
    """
    family = definition.family
    foreign: list[tuple[int, str, str, tuple[str, ...]]] = []
    any_native = False
    for position, node in enumerate(definition.nodes):
        spec = catalog.specs.get(node.step)
        if spec is None:
            errors.append(
                Problem(
                    code="unknown_step",
                    node_id=node.id,
                    path=f"$.nodes[{position}].step",
                    message=f"step {node.step!r} is not in the catalogue",
                )
            )
        elif family in spec.families:
            any_native = True
        else:
            foreign.append((position, node.id, node.step, spec.families))
    for position, node_id, step, families in foreign:
        path = f"$.nodes[{position}].step"
        owners = "/".join(families)
        if not any_native:
            errors.append(
                Problem(
                    code="step_not_in_family",
                    node_id=node_id,
                    path=path,
                    message=f"step {step!r} belongs to {owners}, not to the {family} family's "
                    f"palette, and no node of this graph does: is the family right?",
                )
            )
        elif not parents.get(node_id):
            errors.append(
                Problem(
                    code="wrong_family_entry",
                    node_id=node_id,
                    path=path,
                    message=f"entry node {node_id!r} runs {step!r} of {owners}, but it would "
                    f"start from the {family} family's entry context",
                )
            )
        elif definition.migration_graph:
            warnings.append(
                Problem(
                    code="mixed_family",
                    node_id=node_id,
                    path=path,
                    message=f"step {step!r} belongs to {owners}: a mixed-family node, accepted "
                    f"because this is a migration graph",
                )
            )
        else:
            errors.append(
                Problem(
                    code="mixed_family",
                    node_id=node_id,
                    path=path,
                    message=f"step {step!r} belongs to {owners}, not to {family}: a graph mixing "
                    f"families needs migration_graph: true",
                )
            )


def _check_edges(
    definition: WorkflowDefinition, index: dict[str, int], errors: list[Problem]
) -> list[tuple[str, str]]:
    edges: dict[tuple[str, str], None] = {}  # a dict keeps the first-seen order, a set would not
    for position, edge in enumerate(definition.edges):
        missing = [end for end in (edge.source, edge.target) if end not in index]
        for end in missing:
            errors.append(
                Problem(
                    code="dangling_edge",
                    node_id=end,
                    path=f"$.edges[{position}]",
                    message=f"edge {edge.source} → {edge.target} names unknown node {end!r}",
                )
            )
        if missing:
            continue
        if edge.source == edge.target:
            errors.append(
                Problem(
                    code="cycle",
                    node_id=edge.source,
                    path=f"$.edges[{position}]",
                    message=f"node {edge.source!r} depends on itself",
                )
            )
            continue
        edges[(edge.source, edge.target)] = None
    return list(edges)


def _check_bindings(
    definition: WorkflowDefinition,
    catalog: Catalog,
    index: dict[str, int],
    order: list[str],
    parents: Mapping[str, list[str]],
    errors: list[Problem],
) -> None:
    family = catalog.families[definition.family]
    entry_fields = family.entry_fields()
    for node_id, fields in input_sources(definition, catalog, index, order, parents).items():
        node = definition.nodes[index[node_id]]
        required = catalog.specs[node.step].data_inputs()
        for field, sources in fields.items():
            if not sources and required[field] and field not in entry_fields:
                errors.append(
                    Problem(
                        code="unresolved_input",
                        node_id=node_id,
                        path=f"inputs.{field}",
                        message=f"{node.step} consumes {field!r}, which no upstream node produces "
                        f"and the {definition.family} entry context does not provide",
                    )
                )
            elif len(sources) > 1:
                errors.append(
                    Problem(
                        code="ambiguous_input",
                        node_id=node_id,
                        path=f"inputs.{field}",
                        message=f"{field!r} is produced by several upstream nodes "
                        f"({', '.join(sources)}); connect only one",
                    )
                )


def input_sources(
    definition: WorkflowDefinition,
    catalog: Catalog,
    index: Mapping[str, int],
    order: list[str],
    parents: Mapping[str, list[str]],
) -> dict[str, dict[str, tuple[str, ...]]]:
    """Node id → each input field it consumes → its nearest upstream producers (see
    nearest_producers); nodes of unknown steps are left out.

    Args:
        definition: the definition.
        catalog: the catalogue its steps come from.
        index: node id → position of the node that id names (the first, if duplicated).
        order: every node id of index, in topological order.
        parents: node id → its parents.
    """
    producers: dict[str, set[str]] = defaultdict(set)
    wanted: dict[str, list[str]] = {}
    # Only the first node of a duplicated id counts, or its copies read as rival producers.
    for node_id, position in index.items():
        spec = catalog.specs.get(definition.nodes[position].step)
        if spec is None:
            continue
        for field in spec.data_outputs():
            producers[field].add(node_id)
        wanted[node_id] = list(spec.data_inputs())
    return nearest_producers(order, parents, producers, wanted)


def _check_params(
    definition: WorkflowDefinition, catalog: Catalog, oversized: set[int], errors: list[Problem]
) -> None:
    for position, node in enumerate(definition.nodes):
        spec = catalog.specs.get(node.step)
        if spec is None or position in oversized:
            continue
        try:
            spec.params_model.model_validate(node.params)
        except ValidationError as exc:
            for error in exc.errors():
                errors.append(
                    Problem(
                        code="invalid_params",
                        node_id=node.id,
                        path=_json_path(("nodes", position, "params", *error["loc"])),
                        message=f"{'.'.join(map(str, error['loc']))}: {error['msg']}",
                    )
                )


def _check_connectivity(
    definition: WorkflowDefinition, edges: list[tuple[str, str]], warnings: list[Problem]
) -> None:
    if len(definition.nodes) < 2:
        return
    connected = {end for edge in edges for end in edge}
    for node in definition.nodes:
        if node.id not in connected:
            warnings.append(
                Problem(
                    code="unreachable_node",
                    node_id=node.id,
                    message=f"node {node.id!r} has no edges; it runs alone",
                )
            )


def _json_path(loc: tuple) -> str:
    path = "$"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _node_id_at(document: Any, loc: tuple) -> str | None:
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        try:
            node_id = document["nodes"][loc[1]].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
        # A non-string id is itself the shape error; it cannot name the node.
        return node_id if isinstance(node_id, str) else None
    return None


def _report(errors: list[Problem], warnings: list[Problem], catalog: Catalog) -> ValidationReport:
    return ValidationReport(
        valid=not errors, errors=_sorted(errors), warnings=_sorted(warnings), catalog_version=catalog.version
    )


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.code, p.node_id or "", p.path or "", p.message))
