"""The production-module decorator: a Temporal activity named by its module key, plus a contract."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.artifacts import ArtifactRef
from core.errors import ModuleError
from core.vocabulary import Family, QueueName, RetryPolicy

SPEC_ATTRIBUTE = "__prodgraph_module__"
#: Model config of every module contract: unknown keys are errors, field docstrings reach the
#: JSON schemas the editor renders.
CONTRACT = ConfigDict(extra="forbid", use_attribute_docstrings=True)


@dataclass(frozen=True)
class ModuleSpec:
    """Everything the registry needs to know about one production module."""

    key: str
    families: tuple[Family, ...]
    label: str
    category: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    params_model: type[BaseModel]
    task_queue: QueueName
    timeout_s: float
    legacy_source: str | None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    local: bool = False
    """Light and quick: the graph runs it as a local activity in the workflow's own worker."""
    side_effects: bool = False
    """It acts on the world (delivers, notifies): a shadow run leaves it out."""
    ui: dict[str, str] = field(default_factory=dict)

    def data_inputs(self) -> dict[str, bool]:
        """Input fields other than params, each mapped to whether it is required."""
        return {
            name: info.is_required()
            for name, info in self.input_model.model_fields.items()
            if name != "params"
        }

    def data_outputs(self) -> list[str]:
        """Output field names, which downstream nodes bind to by name."""
        return list(self.output_model.model_fields)

    def artifact_roles_consumed(self) -> list[str]:
        """Input fields that carry artifact references."""
        return _artifact_fields(self.input_model, exclude={"params"})

    def artifact_roles_produced(self) -> list[str]:
        """Output fields that carry artifact references."""
        return _artifact_fields(self.output_model)


def production_module(
    key: str,
    *,
    families: tuple[Family, ...],
    label: str,
    category: str,
    task_queue: QueueName = "default",
    timeout_s: float = 120.0,
    legacy_source: str | None = None,
    retry: RetryPolicy | None = None,
    ui: dict[str, str] | None = None,
    local: bool = False,
    side_effects: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a production module: registers the activity under `key` and attaches its spec."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        input_model, output_model = _contract_models(key, fn)
        params = input_model.model_fields.get("params")
        if params is None or not _is_model(params.annotation):
            raise TypeError(
                f"module {key!r}: its input model {input_model.__name__} needs a "
                "`params: <Action>Params = <Action>Params()` field"
            )
        spec = ModuleSpec(
            key=key,
            families=families,
            label=label,
            category=category,
            description=inspect.getdoc(fn) or "",
            input_model=input_model,
            output_model=output_model,
            params_model=params.annotation,
            task_queue=task_queue,
            timeout_s=timeout_s,
            legacy_source=legacy_source,
            retry=retry or RetryPolicy(),
            ui=ui or {},
            local=local,
            side_effects=side_effects,
        )
        if local and task_queue != "default":
            raise TypeError(f"module {key!r}: a local module runs on the workflow's queue; drop task_queue")
        boundary = _typed_failures(fn)
        setattr(boundary, SPEC_ATTRIBUTE, spec)
        return activity.defn(name=key)(boundary)

    return decorate


def module_spec(fn: Callable[..., Any]) -> ModuleSpec:
    """The spec attached by @production_module (works on bound methods too)."""
    spec = getattr(getattr(fn, "__func__", fn), SPEC_ATTRIBUTE, None)
    if spec is None:
        raise TypeError(f"{fn!r} is not a production module; decorate it with @production_module")
    return spec


def _typed_failures(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The module as an activity: its ModuleErrors leave as ApplicationErrors of the same code."""

    @functools.wraps(fn)
    async def boundary(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except ModuleError as error:
            raise ApplicationError(
                error.message, type=error.code, non_retryable=not error.retryable
            ) from None

    return boundary


def _contract_models(key: str, fn: Callable[..., Any]) -> tuple[type[BaseModel], type[BaseModel]]:
    hints = typing.get_type_hints(fn)
    params = [name for name in inspect.signature(fn).parameters if name != "self"]
    if len(params) != 1 or not _is_model(hints.get(params[0])):
        raise TypeError(f"module {key!r} must take exactly one pydantic model argument")
    output = hints.get("return")
    if not _is_model(output):
        raise TypeError(f"module {key!r} returns {output!r}; annotate the return with a BaseModel subclass")
    return hints[params[0]], output


def _is_model(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


def _artifact_fields(model: type[BaseModel], exclude: AbstractSet[str] = frozenset()) -> list[str]:
    return [
        name
        for name, info in model.model_fields.items()
        if name not in exclude and _mentions_artifact(info.annotation)
    ]


def _mentions_artifact(annotation: Any) -> bool:
    if annotation is ArtifactRef:
        return True
    return any(_mentions_artifact(arg) for arg in typing.get_args(annotation))
