"""Fixtures for code that talks to OSS: a local stand-in over real HTTP.

Use them with ``from fixtures_oss import oss_standin, oss_store  # noqa: F401``.

One server serves the whole session (it is started on first use and stopped when pytest
ends); every test gets it freshly reset, because moto's state is process-global.
"""

from __future__ import annotations

import uuid

import pytest

from crashdiag.cloud.credentials import Credentials
from crashdiag.cloud.oss_store import OssStore
from standins.oss import OssStandIn

ACCESS_KEY_ID = "test-access-key-id"
ACCESS_KEY_SECRET = "test-access-key-secret"
CREDENTIALS = Credentials(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
REGION = "cn-hangzhou"  # the stand-in's buckets live here: the V4 scope must name it

_server: OssStandIn | None = None


def _session_server(config: pytest.Config) -> OssStandIn:
    # A module-level singleton rather than a session fixture: a test module that imports
    # only oss_standin/oss_store would not see a helper fixture they depend on.
    global _server
    if _server is None:
        _server = OssStandIn(keys={ACCESS_KEY_ID: ACCESS_KEY_SECRET}, region=REGION).start()
        config.add_cleanup(_stop_server)
    return _server


def _stop_server() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


@pytest.fixture
def oss_standin(request: pytest.FixtureRequest) -> OssStandIn:
    server = _session_server(request.config)
    server.reset()
    return server


@pytest.fixture
def oss_store(oss_standin: OssStandIn) -> OssStore:
    """An OssStore on a fresh, empty bucket, through a real ``oss2.Bucket`` signing V4."""
    name = f"crashdiag-test-{uuid.uuid4().hex[:12]}"
    oss_standin.create_bucket(name)
    return OssStore.connect(oss_standin.endpoint, name, CREDENTIALS, region=REGION, timeout=10)
