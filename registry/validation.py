"""Validation of workflow definitions: every problem at once, each with a code, place and words."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from registry.catalog import Catalog
from registry.definition import WorkflowDefinition

MAX_NODES = 200


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


def validate_document(document: Any, catalog: Catalog) -> ValidationReport:
    """Validate raw JSON: shape first, then the graph."""
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
        return ValidationReport(
            valid=False, errors=_sorted(errors), warnings=[], catalog_version=catalog.version
        )
    return validate_definition(definition, catalog)


def validate_definition(definition: WorkflowDefinition, catalog: Catalog) -> ValidationReport:
    """Validate a parsed definition against the catalogue and its family."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    index = _index_nodes(definition, errors)
    _check_catalog_version(definition, catalog, warnings)
    _check_size(definition, errors)
    edges = _check_edges(definition, index, errors)
    _check_steps(definition, catalog, edges, errors, warnings)
    order = topological_order(list(index), edges)
    if order is None:
        cycle = sorted(_nodes_on_cycles(list(index), edges))
        errors.append(
            Problem(
                code="cycle",
                node_id=cycle[0] if cycle else None,
                message=f"the graph has a cycle through {', '.join(cycle)}",
            )
        )
    else:
        _check_bindings(definition, catalog, index, order, edges, errors)
    _check_params(definition, catalog, errors)
    _check_connectivity(definition, edges, warnings)
    return ValidationReport(
        valid=not errors, errors=_sorted(errors), warnings=_sorted(warnings), catalog_version=catalog.version
    )


def topological_order(node_ids: list[str], edges: list[tuple[str, str]]) -> list[str] | None:
    """Kahn's algorithm, ties broken by node id; None when there is a cycle."""
    indegree = {node_id: 0 for node_id in node_ids}
    children: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        children[source].append(target)
        indegree[target] += 1
    ready = sorted(node_id for node_id, degree in indegree.items() if degree == 0)
    order: list[str] = []
    while ready:
        current = ready.pop(0)
        order.append(current)
        for child in children[current]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
        ready.sort()
    return order if len(order) == len(node_ids) else None


def ancestors_of(node_id: str, edges: list[tuple[str, str]]) -> set[str]:
    """Every node upstream of node_id."""
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


def resolve_input(
    node_id: str,
    field: str,
    producers: dict[str, list[str]],
    edges: list[tuple[str, str]],
    entry_fields: set[str],
) -> tuple[str | None, list]:
    """Nearest provider of a field: (upstream node or None for entry, candidates if ambiguous)."""
    upstream = ancestors_of(node_id, edges)
    candidates = sorted(producer for producer in producers.get(field, []) if producer in upstream)
    # A candidate shadowed by a later producer on the same path is not ambiguous: nearest wins.
    nearest = [
        c
        for c in candidates
        if not any(c in ancestors_of(other, edges) for other in candidates if other != c)
    ]
    if len(nearest) == 1:
        return nearest[0], []
    if len(nearest) > 1:
        return None, nearest
    return (None, []) if field in entry_fields else (None, ["<missing>"])


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


def _check_size(definition: WorkflowDefinition, errors: list[Problem]) -> None:
    if len(definition.nodes) > MAX_NODES:
        errors.append(
            Problem(
                code="too_many_nodes",
                path="$.nodes",
                message=f"{len(definition.nodes)} nodes; at most {MAX_NODES}",
            )
        )
    if not definition.nodes:
        errors.append(
            Problem(code="empty_workflow", path="$.nodes", message="a workflow needs at least one node")
        )


def _check_steps(
    definition: WorkflowDefinition,
    catalog: Catalog,
    edges: list[tuple[str, str]],
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
    has_parent = {target for _, target in edges}
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
        elif node_id not in has_parent:
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
    edges: list[tuple[str, str]] = []
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
        if (edge.source, edge.target) not in edges:
            edges.append((edge.source, edge.target))
    return edges


def _check_bindings(
    definition: WorkflowDefinition,
    catalog: Catalog,
    index: dict[str, int],
    order: list[str],
    edges: list[tuple[str, str]],
    errors: list[Problem],
) -> None:
    family = catalog.families[definition.family]
    producers: dict[str, list[str]] = defaultdict(list)
    # Only the first node of a duplicated id counts, or its copies read as rival producers.
    for node in (definition.nodes[position] for position in index.values()):
        spec = catalog.specs.get(node.step)
        for field in spec.data_outputs() if spec else []:
            producers[field].append(node.id)
    for node_id in order:
        node = definition.node(node_id)
        spec = catalog.specs.get(node.step)
        if spec is None:
            continue
        for field, required in spec.data_inputs().items():
            _, problem = resolve_input(node_id, field, producers, edges, family.entry_fields())
            if problem == ["<missing>"] and required:
                errors.append(
                    Problem(
                        code="unresolved_input",
                        node_id=node_id,
                        path=f"inputs.{field}",
                        message=f"{node.step} consumes {field!r}, which no upstream node produces "
                        f"and the {definition.family} entry context does not provide",
                    )
                )
            elif problem and problem != ["<missing>"]:
                errors.append(
                    Problem(
                        code="ambiguous_input",
                        node_id=node_id,
                        path=f"inputs.{field}",
                        message=f"{field!r} is produced by several upstream nodes "
                        f"({', '.join(problem)}); connect only one",
                    )
                )


def _check_params(definition: WorkflowDefinition, catalog: Catalog, errors: list[Problem]) -> None:
    for position, node in enumerate(definition.nodes):
        spec = catalog.specs.get(node.step)
        if spec is None:
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


def _nodes_on_cycles(node_ids: list[str], edges: list[tuple[str, str]]) -> set[str]:
    return {node_id for node_id in node_ids if node_id in ancestors_of(node_id, edges)}


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


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.code, p.node_id or "", p.path or "", p.message))
