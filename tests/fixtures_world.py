"""The wired world for pipeline tests: the pipeline over real SDK clients and real HTTP on
127.0.0.1 (OSS stand-in, ECS OpenAPI stand-in running the real guest script, FC stand-in).

Use with ``from fixtures_world import world, instances, event, report_of  # noqa: F401``.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from crashdiag.cloud.credentials import Credentials
from crashdiag.cloud.ecs_sdk import SdkEcsApi
from crashdiag.cloud.invoke import Fc2Invoker
from crashdiag.cloud.simulate import SimulatedCloud
from crashdiag.pipeline.stages import Pipeline
from crashdiag.settings import Settings
from fixtures_oss import oss_standin, oss_store  # noqa: F401
from standins.ecs import STANDIN_KEY_ID, STANDIN_SECRET, EcsStandIn
from standins.fc import FcStandIn

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
INSTANCES = EVENTS / "instances"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.t += seconds


def event(name: str, **data_changes) -> bytes:
    ev = json.loads((EVENTS / name).read_text())
    if data_changes:
        (ev.get("data") or ev.get("content")).update(data_changes)
    return json.dumps(ev).encode()


@pytest.fixture
def instances(tmp_path: Path) -> Path:
    d = tmp_path / "instances"
    shutil.copytree(INSTANCES, d, symlinks=True, ignore=shutil.ignore_patterns("*.py"))
    return d


@pytest.fixture
def world(instances: Path, oss_store, monkeypatch):  # noqa: F811
    """Everything wired: returns a small namespace with the pipeline and the stand-ins."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    cloud = SimulatedCloud.from_dir(instances)
    clock = FakeClock()
    settings = Settings(collect_wait_seconds=600, collect_poll_seconds=2.0, collect_command_timeout=60, lang="en")
    with EcsStandIn(cloud) as ecs_server:
        ecs = SdkEcsApi(access_key_id=STANDIN_KEY_ID, access_key_secret=STANDIN_SECRET, endpoint=ecs_server.endpoint,
                        protocol="http", connect_timeout=2.0, read_timeout=30.0, attempts=4, deadline=30.0,
                        backoff_initial=0.01, backoff_max=0.05)
        pipeline = Pipeline(oss_store, ecs, None, settings, clock=clock, sleep=clock.sleep)

        def run_collect(inv):  # what FC does with a queued async invocation
            ref = json.loads(inv.payload)
            pipeline.collect(ref)
            key = f"incidents/{ref['region']}/{ref['instance_id']}/{ref['incident_id']}/crash.log"
            if oss_store.exists(key):  # the OSS trigger on crash.log
                pipeline.diagnose(key)

        with FcStandIn(on_invoke=run_collect) as fc:
            pipeline.invoker = Fc2Invoker(fc.endpoint, "ecs-crashdiag", Credentials("fc-test-key", "fc-test-secret"))

            class World:
                pass

            w = World()

            def ingest(payload):
                summary = pipeline.ingest(payload)
                fc.drain()
                return summary

            w.ingest = ingest
            w.pipeline, w.store, w.ecs_server, w.fc, w.cloud, w.instances = pipeline, oss_store, ecs_server, fc, cloud, instances
            yield w


def report_of(w, prefix: str) -> dict:
    return json.loads(w.store.get(f"{prefix}report.json"))


def replay_events(store_dir: Path, *names: str, lang: str = "en"):
    """Replay sample events into a local store (the embedded defaults); returns the store."""
    from crashdiag.cloud.store import LocalStore
    from crashdiag.replay import replay

    settings = Settings.from_env({}, store_dir=str(store_dir), instances_dir=str(ROOT / "events" / "instances"), lang=lang,
                                 collect_poll_seconds=0.05, collect_wait_seconds=2)
    for name in names:
        replay((ROOT / "events" / name).read_bytes(), settings)
    return LocalStore(store_dir)
