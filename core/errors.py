"""The one rooted error tree: every failure prodgraph reports on purpose, each with a stable code.

Module errors cross the Temporal boundary as `ApplicationError(type=code, non_retryable=...)` and
the child-job protocol carries the same codes, so a code means one thing everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic import ValidationError


class ProdgraphError(Exception):
    """Root of every error prodgraph raises on purpose; names what is wrong and where."""

    code: ClassVar[str] = "prodgraph_error"

    def __init__(
        self,
        message: str,
        *,
        node_id: str | None = None,
        field: str | None = None,
        problems: list[dict[str, Any]] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.node_id = node_id
        self.field = field
        self.problems = problems

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable form for JSON output and API answers."""
        return {"code": self.code, "message": self.message, "node_id": self.node_id}


# --- what a client or author asked for is wrong ----------------------------------------------


class InvalidDefinitionError(ProdgraphError):
    """A workflow definition, or the overrides compiled into it, failed validation."""

    code = "invalid_definition"


class LegacyMappingError(ProdgraphError):
    """A legacy render setting cannot be read; names the offending key."""

    code = "legacy_mapping_error"

    def __init__(self, message: str, *, key: str):
        super().__init__(message, field=key)
        self.key = key


class InvalidOutputTypeError(ProdgraphError):
    """An output type cannot be saved as it stands; problems are named by field."""

    code = "invalid_output_type"


class DispatchError(ProdgraphError):
    """An order line cannot be dispatched as its output type stands."""

    code = "dispatch_refused"


class PreflightFailedError(ProdgraphError):
    """An order line failed a preflight check, so nothing was started; `checks` lists them all."""

    code = "preflight_failed"

    def __init__(self, message: str, *, checks: list[dict[str, Any]], problems: list[dict[str, Any]] | None):
        super().__init__(message, problems=problems)
        self.details = {"checks": checks}


class NotFoundError(ProdgraphError):
    """A resource the request names does not exist."""

    code = "not_found"


class ConflictError(ProdgraphError):
    """The request collides with what is stored (e.g. a slug already taken)."""

    code = "conflict"


class RolloutGateClosedError(ConflictError):
    """An output type asked to move to the graph before its shadow runs showed parity."""

    code = "rollout_gate_closed"


class CatalogChangedError(ProdgraphError):
    """A definition was written against another catalogue version than the current one."""

    code = "catalog_changed"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        details: dict[str, Any],
        problems: list[dict[str, Any]] | None = None,
    ):
        super().__init__(message, field="catalog_version", problems=problems)
        self.status = status
        self.details = details


class OperatorActionRefusedError(ProdgraphError):
    """An operator action a run refused: unknown node, wrong state, params or output off contract.

    The rule that refused it is the first problem's code (unknown_node, node_not_awaiting_operator,
    invalid_params, invalid_output, deliverable_needs_output, run_finished, ...).
    """

    code = "operator_action_refused"


class TemporalUnavailableError(ProdgraphError):
    """No Temporal server is configured or reachable."""

    code = "temporal_unavailable"


# --- what a production module reports ----------------------------------------------------------


class ModuleError(ProdgraphError):
    """A failure a production module reports; permanent unless the class says it may pass."""

    code = "module_failed"
    retryable: ClassVar[bool] = False


class ContractViolationError(ModuleError):
    """Data handed to a module does not match its contract."""

    code = "contract_violation"


class CadFileNotFoundError(ModuleError):
    """The STEP file does not exist or is not a readable file."""

    code = "cad_file_not_found"


class CadFileNotAllowedError(ModuleError):
    """A STEP path outside the input roots a worker reads (never says whether it exists)."""

    code = "cad_file_not_allowed"


class InvalidCadFileError(ModuleError):
    """The STEP file cannot be read into usable geometry."""

    code = "invalid_cad_file"


class InvalidGlbError(ModuleError):
    """A GLB handed to Blender is missing, empty or holds no geometry."""

    code = "invalid_glb"


class UnknownMaterialError(ModuleError):
    """A material key is not in the library."""

    code = "unknown_material"


class RenderFailedError(ModuleError):
    """Blender could not produce the requested output."""

    code = "render_failed"


class JobTimeoutError(ModuleError):
    """A child job ran past its wall-clock limit and was killed."""

    code = "job_timeout"
    retryable = True


class JobCrashedError(ModuleError):
    """A child job died without a result (a signal, or an exit without a response)."""

    code = "job_crashed"


class JobKilledError(ModuleError):
    """A child job was killed from outside (SIGKILL/SIGTERM: the OOM killer, an operator, its host).

    Not the job's own fault, so it may pass on a retry; a job that dies of its own fault (SIGSEGV,
    SIGABRT, SIGBUS, an exit without a response) is a JobCrashedError, which this is not.
    """

    code = "job_killed"
    retryable = True


class JobInternalError(ModuleError):
    """A child job raised something unexpected: a bug or a passing fault, so it may be retried."""

    code = "job_internal_error"
    retryable = True


class ArtifactMissingError(ModuleError):
    """A referenced artifact is not in the store (never written, removed, or quarantined)."""

    code = "artifact_missing"


class ArtifactCorruptError(ModuleError):
    """A stored artifact no longer hashes to its reference: it was quarantined, never served.

    A retry reads the same bad bytes, so it is permanent; re-running the module that produced
    the artifact writes a good copy again.
    """

    code = "artifact_corrupt"


#: Module error classes by code, so a code read back from a child job or a failure is typed again.
MODULE_ERRORS: dict[str, type[ModuleError]] = {
    cls.code: cls
    for cls in (
        ContractViolationError,
        CadFileNotAllowedError,
        CadFileNotFoundError,
        InvalidCadFileError,
        InvalidGlbError,
        UnknownMaterialError,
        RenderFailedError,
        JobTimeoutError,
        JobCrashedError,
        JobKilledError,
        JobInternalError,
        ArtifactMissingError,
        ArtifactCorruptError,
    )
}


def module_error(code: str, message: str) -> ModuleError:
    """The module error a code names; an unknown code is a job's internal error."""
    return MODULE_ERRORS.get(code, JobInternalError)(message)


def first_problem(exc: ValidationError) -> tuple[str, str]:
    """The first problem of a validation error: its dotted field path ("" for the whole) and words."""
    first = exc.errors()[0]
    return ".".join(map(str, first["loc"])), first["msg"]
