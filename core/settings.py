"""One typed settings object, read once from the environment (PRODGRAPH_*)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.vocabulary import QUEUES, QueueName


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
    """SQLModel database URL; defaults to SQLite under STATE_DIR."""
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
    api_keys: dict[str, str] = Field(default_factory=dict, repr=False)
    """API tokens → the owner each one names, a JSON object (`{"<token>": "ci-bot"}`). Every API
    request sends `Authorization: Bearer <token>`; with none configured the API refuses them all."""
    api_host: str = "127.0.0.1"
    """Address the API listens on; a container sets 0.0.0.0 so its published port reaches it."""
    api_port: int = Field(8000, ge=1, le=65535)
    """Port the API listens on."""
    api_allow_anonymous: bool = False
    """Local development only: serve requests that send no token, as the owner `anonymous`."""
    max_body_mb: float = Field(2.0, gt=0)
    """Largest request body (MiB) the API's JSON routes read; larger ones are answered 413."""
    max_json_depth: int = Field(32, ge=1, le=256)
    """Deepest nesting of arrays and objects the API accepts in a JSON body (422 beyond)."""

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
