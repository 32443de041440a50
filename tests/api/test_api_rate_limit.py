"""The invocation rate limit: a token bucket per key on launches, 429 with Retry-After beyond it."""

from __future__ import annotations

from pathlib import Path

from api_keys import bearer, token_for, with_keys
from fastapi.testclient import TestClient

from api.app import create_app
from api.ratelimit import TokenBuckets
from core.settings import Settings
from core.vocabulary import Role

ACME = bearer(token_for(Role.client, "acme"))
GLOBEX = bearer(token_for(Role.client, "globex"))
CMS = bearer(token_for(Role.author, "cms"))


def test_a_bucket_gives_its_burst_then_refills_at_its_rate():
    now = [0.0]
    buckets = TokenBuckets(rate_per_s=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == 0.5  # one token comes back in half a second
    assert buckets.take("b") == 0.0  # every key has its own bucket
    now[0] += 0.5
    assert buckets.take("a") == 0.0 and buckets.take("a") == 0.5
    now[0] += 60  # a long pause refills to the burst, no further
    assert [buckets.take("a") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]


#: What a launch that passes the limit gets here: no Temporal is configured, so it stops there.
PASSED = 503


def launch(client: TestClient, headers: dict[str, str]) -> int:
    """POST an order line: the limit applies before the body is read or Temporal is asked."""
    return client.post("/api/order-lines", json={}, headers=headers).status_code


def test_launches_over_the_limit_are_429_with_retry_after(tmp_path: Path):
    settings = with_keys(
        Settings(state_dir=tmp_path, invocation_burst=3, invocation_rate_per_s=0.25),
        (Role.client, "acme"),
        (Role.client, "globex"),
        (Role.author, "cms"),
    )
    with TestClient(create_app(settings)) as client:
        assert [launch(client, ACME) for _ in range(3)] == [PASSED] * 3
        refused = client.post("/api/order-lines", json={}, headers=ACME)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "4"
        error = refused.json()["error"]
        assert error["code"] == "rate_limited" and error["field"] == "Authorization"
        assert "3 at once" in error["message"]
        assert launch(client, GLOBEX) == PASSED  # another key's bucket is full
        assert client.get("/api/output-types", headers=ACME).status_code == 200  # reads are not limited
        # A refused role takes no token from anyone's bucket.
        assert [launch(client, CMS) for _ in range(5)] == [403] * 5
        assert [launch(client, GLOBEX) for _ in range(2)] == [PASSED] * 2


def test_the_default_burst_takes_fifty_concurrent_launches_from_one_key(tmp_path: Path):
    settings = with_keys(Settings(state_dir=tmp_path), (Role.client, "acme"))
    with TestClient(create_app(settings)) as client:
        assert {launch(client, ACME) for _ in range(50)} == {PASSED}


def test_the_429_is_documented_on_limited_routes(tmp_path: Path):
    document = create_app(Settings(state_dir=tmp_path)).openapi()
    assert "429" in document["paths"]["/api/order-lines"]["post"]["responses"]
