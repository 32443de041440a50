"""The Temporal connection: a pydantic-speaking client, UI links, retry policies as Temporal's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import common
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter

from core.settings import Settings
from core.vocabulary import RetryPolicy


async def connect(address: str, settings: Settings) -> Client:
    """A client on the settings' namespace that speaks pydantic."""
    return await Client.connect(
        address, namespace=settings.temporal_namespace, data_converter=pydantic_data_converter
    )


@dataclass
class TemporalSession:
    """A connected client, the Web UI's base URL, and the settings it was made from."""

    client: Client
    ui_url: str | None
    settings: Settings

    def task_queues(self) -> dict[str, str]:
        """Logical queue → concrete task queue name, as workflows need them."""
        return self.settings.task_queues()

    def workflow_url(self, workflow_id: str) -> str | None:
        """Link to a workflow run in the Temporal Web UI."""
        if not self.ui_url:
            return None
        return f"{self.ui_url}/namespaces/{self.settings.temporal_namespace}/workflows/{workflow_id}"


def temporal_retry(policy: RetryPolicy) -> common.RetryPolicy:
    """Our retry policy as Temporal's."""
    return common.RetryPolicy(
        maximum_attempts=policy.max_attempts,
        initial_interval=timedelta(seconds=policy.initial_interval_s),
        backoff_coefficient=policy.backoff,
        maximum_interval=timedelta(seconds=policy.max_interval_s),
    )


# --- search attributes: what a run is and where it stands, searchable in the Temporal UI -------

FAMILY = SearchAttributeKey.for_keyword("ProdgraphFamily")
DEFINITION = SearchAttributeKey.for_keyword("ProdgraphWorkflowDefinition")
OUTPUT_TYPE = SearchAttributeKey.for_keyword("ProdgraphOutputType")
ORDER_LINE = SearchAttributeKey.for_keyword("ProdgraphOrderLine")
ROUTE = SearchAttributeKey.for_keyword("ProdgraphRoute")
CAD_FILE = SearchAttributeKey.for_keyword("ProdgraphCadFile")
FAILED_NODE = SearchAttributeKey.for_keyword("ProdgraphFailedNode")
FAILED_MODULE = SearchAttributeKey.for_keyword("ProdgraphFailedModule")
AWAITING_OPERATOR = SearchAttributeKey.for_bool("ProdgraphAwaitingOperator")
RERUN_OF = SearchAttributeKey.for_keyword("ProdgraphRerunOf")
OWNER = SearchAttributeKey.for_keyword("ProdgraphOwner")
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey, ...] = (
    FAMILY,
    DEFINITION,
    OUTPUT_TYPE,
    ORDER_LINE,
    ROUTE,
    CAD_FILE,
    FAILED_NODE,
    FAILED_MODULE,
    AWAITING_OPERATOR,
    RERUN_OF,
    OWNER,
)


def search_attribute_flags() -> list[str]:
    """`temporal server start-dev` flags that register every prodgraph search attribute."""
    return [
        flag for key in SEARCH_ATTRIBUTES for flag in ("--search-attribute", f"{key.name}={_type_name(key)}")
    ]


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register the prodgraph search attributes a server does not know yet (dev servers)."""
    known = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        key.name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{_type_name(key).upper()}")
        for key in SEARCH_ATTRIBUTES
        if key.name not in known.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )


def _type_name(key: SearchAttributeKey) -> str:
    return "Bool" if key.indexed_value_type == common.SearchAttributeIndexedValueType.BOOL else "Keyword"
