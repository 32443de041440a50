"""schemathesis against the app's own OpenAPI, in-process, on a real Temporal dev server: every
operation, called with the test key on valid and invalid input, answers no 5xx and only what its
schema declares."""

from __future__ import annotations

import pytest
import schemathesis
from api_keys import AUTH, authorized, with_test_key
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.app import create_app
from core.errors import ProdgraphError
from core.settings import Settings
from prodgraph import operations

pytestmark = [pytest.mark.e2e]
#: Examples per operation and mode: enough to reach each parameter's edges, few enough for the suite.
EXAMPLES = 15
CHECKS = [not_a_server_error, response_schema_conformance]


def declared_operations() -> list[str]:
    """Every operation the app declares, as "METHOD /path" (read without starting anything)."""
    spec = create_app(Settings(database_url="sqlite://")).openapi()
    return [f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item]


@pytest.fixture(scope="module")
def api_schema(temporal_env, tmp_path_factory: pytest.TempPathFactory) -> schemathesis.BaseSchema:
    """The app's OpenAPI, loaded from the app itself; its Temporal routes reach the real dev server."""
    address = temporal_env.client.service_client.config.target_host
    # No worker polls these queues: a launch the fuzzer gets through starts a run that just waits.
    app_settings = Settings(
        state_dir=tmp_path_factory.mktemp("schemathesis"),
        temporal_address=address,
        default_queue="schemathesis",
        cad_queue="schemathesis-cad",
        render_queue="schemathesis-render",
    )
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(with_test_key(app_settings)))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation", declared_operations())
def test_no_server_errors_and_answers_match_their_schemas(
    api_schema: schemathesis.BaseSchema, operation: str, mode: GenerationMode
):
    method, path = operation.split(" ", 1)

    @given(case=api_schema[path][method].as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:
        # The key replaces any Authorization the generator made up: the fuzzing is of the routes;
        # tests/api/test_api_auth.py covers requests without a valid key.
        case.headers = {**(case.headers or {}), **AUTH}
        case.call_and_validate(checks=CHECKS)

    call()


# --- what schemathesis found, each kept as a plain regression test --------------------------


@pytest.mark.parametrize("field", ["order_line", "output_type"])
def test_a_run_filter_with_a_nul_is_a_422_naming_it(temporal_env, settings: Settings, field: str):
    # A NUL in a visibility query broke Temporal's SQL store: a 500 after seconds of retries.
    address = temporal_env.client.service_client.config.target_host
    app_settings = with_test_key(settings.model_copy(update={"temporal_address": address}))
    with authorized(create_app(app_settings)) as client:
        refused = client.get("/api/runs", params={field: "ol-\x00"})
        fine = client.get("/api/runs", params={field: "ol-7.a_b:c"})
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == f"query.{field}"
    assert fine.status_code == 200 and fine.json() == []


async def test_the_cli_refuses_a_run_filter_before_asking_temporal():
    with pytest.raises(ProdgraphError) as refused:
        await operations.list_runs(None, order_line="a\x00b")  # type: ignore[arg-type]
    assert refused.value.field == "order_line"
