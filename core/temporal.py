"""The Temporal connection: a pydantic-speaking client, UI links, retry policies as Temporal's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import common
from temporalio.client import Client
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
