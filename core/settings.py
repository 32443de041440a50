"""One typed settings object, read once from the environment (PRODGRAPH_*)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.vocabulary import OWNER_PATTERN, QUEUES, QueueName, Role


class BootstrapKey(BaseModel):
    """A key configured in PRODGRAPH_API_KEYS: whom it acts for and what it may do."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    owner: str = Field(pattern=OWNER_PATTERN)
    """Who the key acts for: a client's objects belong to its owner."""
    role: Role = Role.client
    """What the key may do (core.vocabulary.Role)."""


class Settings(BaseSettings):
    """Everything configurable about a prodgraph process."""

    model_config = SettingsConfigDict(env_prefix="PRODGRAPH_", extra="ignore")

    temporal_address: str | None = None
    """host:port of a Temporal frontend; unset means start the embedded dev server."""
    temporal_namespace: str = "default"
    """Temporal namespace for every workflow."""
    temporal_ui_url: str | None = None
    """Base URL of the Temporal Web UI when connecting to a deployed server."""
    state_dir: Path = Path(".state")
    """Where the embedded server keeps its SQLite file, and the default artifact store."""
    artifact_dir: Path | None = None
    """Content-addressed artifact store root; defaults to STATE_DIR/artifacts."""
    publish_dir: Path | None = None
    """Where output.publish_asset delivers; defaults to STATE_DIR/published."""
    database_url: str | None = None
    """SQLModel database URL; defaults to SQLite under STATE_DIR (`postgresql+psycopg://user:pw@host/db`
    for PostgreSQL). The schema is migrated to the release's head on every start."""
    db_pool_size: int = Field(10, ge=1, le=1000)
    """Database connections a process keeps open."""
    db_max_overflow: int = Field(10, ge=0, le=1000)
    """Connections opened beyond the pool under load (closed again when returned). The API runs
    at most db_pool_size + db_max_overflow database-bound threads at once (api/app.py)."""
    db_pool_timeout_s: float = Field(30.0, gt=0)
    """How long a request waits for a free connection before it fails; with the API's thread
    limit matched to the pool it waits for a thread instead, so this is a last resort."""
    sqlite_busy_timeout_s: float = Field(30.0, ge=0)
    """How long an SQLite writer waits for another one's lock before failing (`database is locked`)."""
    default_queue: str = "prodgraph"
    """Task queue of workflows and light activities."""
    cad_queue: str = "cad"
    """Task queue of OCP jobs."""
    render_queue: str = "render"
    """Task queue of Blender jobs."""
    render_concurrency: int = 1
    """Blender jobs one worker runs at once (each is a whole child process)."""
    cad_concurrency: int = 2
    """OCP jobs one worker runs at once."""
    input_roots: list[Path] = []
    """Folders workers read customers' STEP files from by path (a shared mount in production);
    the state folder's inputs/, where the CLI stages local files, is always one."""
    render_budget_gigasamples: float = 64.0
    """Largest render accepted: width × height × samples × frames, in billions (1920×1080 at 64
    samples is 0.13; a 36-frame 1280×720 turntable at 32 is 1.06)."""
    job_memory_limit_mb: int = 8192
    """Address-space limit of a child job, so one bad file cannot starve the machine."""
    worker_shutdown_grace_s: float = 30.0
    """On SIGTERM a worker stops polling and gives in-flight activities this long to finish
    before it cancels them (and kills their child jobs); keep it below the supervisor's kill
    timeout (Docker's stop_grace_period, Kubernetes' terminationGracePeriodSeconds)."""
    api_keys: dict[str, str | BootstrapKey] = Field(default_factory=dict, repr=False)
    """Keys besides those in the database (`prodgraph keys create`), for bootstrapping a deployment
    and for tests: a JSON object of token → `{"owner": "ops", "role": "admin"}`, or token → owner
    (a plain owner string is a `client` key). Every API request sends `Authorization: Bearer
    <token>`."""
    api_host: str = "127.0.0.1"
    """Address the API listens on; a container sets 0.0.0.0 so its published port reaches it."""
    api_port: int = Field(8000, ge=1, le=65535)
    """Port the API listens on."""
    api_allow_anonymous: bool = False
    """Local development only: serve requests that send no token, as the owner `anonymous` with
    the `admin` role."""
    api_key_cache_s: float = Field(2.0, ge=0, le=10)
    """How long the API remembers a database key it looked up: a key revoked by another process
    (the CLI, another API replica) keeps working at most this long there; 0 looks up every time."""
    invocation_burst: int = Field(60, ge=1)
    """Invocations (launches, uploads) one key may send at once before the rate limit applies;
    enough for 50 concurrent launches."""
    invocation_rate_per_s: float = Field(1.0, gt=0)
    """Invocations per second one key regains after its burst (beyond them: 429 rate_limited)."""
    max_body_mb: float = Field(2.0, gt=0)
    """Largest request body (MiB) the API's JSON routes read; larger ones are answered 413."""
    max_json_depth: int = Field(32, ge=1, le=256)
    """Deepest nesting of arrays and objects the API accepts in a JSON body (422 beyond)."""
    max_upload_mb: float = Field(200.0, gt=0)
    """Largest CAD file (MiB) `POST /api/cad-files` accepts; counted while it streams in (413)."""

    parity_thresholds: dict[str, float] = {}
    """This deployment's parity thresholds where they differ from the documented defaults
    (docs/parity.md), a JSON object (`{"ssim_min": 0.95}`); a calibrated output type uses its own."""
    parity_gate_runs: int = Field(5, ge=1, le=1000)
    """Shadow comparisons, all identical or equivalent, an output type needs before `graph`."""

    def artifact_root(self) -> Path:
        """Resolved artifact store directory."""
        return (self.artifact_dir or self.state_dir / "artifacts").resolve()

    def publish_root(self) -> Path:
        """Resolved publish directory."""
        return (self.publish_dir or self.state_dir / "published").resolve()

    def input_folders(self) -> tuple[Path, ...]:
        """Every folder a worker may read a STEP file from, resolved."""
        return ((self.state_dir / "inputs").resolve(), *(root.resolve() for root in self.input_roots))

    def database(self) -> str:
        """Resolved database URL."""
        return self.database_url or f"sqlite:///{(self.state_dir / 'prodgraph.db').resolve()}"

    def queue_for(self, name: QueueName) -> str:
        """Concrete task queue name for a logical queue (default, cad, render)."""
        queues: dict[QueueName, str] = {
            "default": self.default_queue,
            "cad": self.cad_queue,
            "render": self.render_queue,
        }
        return queues[name]

    def task_queues(self) -> dict[str, str]:
        """Logical queue → concrete task queue name, as workflows carry them."""
        return {name: self.queue_for(name) for name in QUEUES}


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
