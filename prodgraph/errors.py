"""One rooted error tree; every permanent failure names what is wrong and where."""

from __future__ import annotations


class ProdgraphError(Exception):
    """Root of every error prodgraph raises on purpose."""

    code = "prodgraph_error"

    def __init__(self, message: str, *, node_id: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.node_id = node_id
        self.field = field

    def to_dict(self) -> dict:
        """Machine-readable form for JSON output and API answers."""
        return {"code": self.code, "message": self.message, "node_id": self.node_id}


class InvalidCadFileError(ProdgraphError):
    """The STEP file cannot be read into usable geometry."""

    code = "invalid_cad_file"


class CadFileNotFoundError(ProdgraphError):
    """The STEP path does not exist or is not a readable file."""

    code = "cad_file_not_found"


class RenderFailedError(ProdgraphError):
    """Blender could not produce the requested output."""

    code = "render_failed"


class JobTimeoutError(ProdgraphError):
    """A child job ran past its wall-clock limit and was killed."""

    code = "job_timeout"


class InvalidDefinitionError(ProdgraphError):
    """A workflow definition failed validation."""

    code = "invalid_definition"

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.problems = problems or []


class UnknownStepError(ProdgraphError):
    """A node names a step the catalogue does not know."""

    code = "unknown_step"


class ContractViolationError(ProdgraphError):
    """Data handed to a module does not match its contract."""

    code = "contract_violation"


class LegacyMappingError(ProdgraphError):
    """A legacy render setting cannot be read; names the offending key."""

    code = "legacy_mapping_error"

    def __init__(self, message: str, *, key: str):
        super().__init__(message, field=key)
        self.key = key
