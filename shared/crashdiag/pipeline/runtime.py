"""Build the pipeline's parts from settings: once per Function Compute instance, lazily.

Handlers call ``pipeline_for(stage)``; only the parts a stage needs are built (the
ingest function never imports the ECS SDK). Tests and replay build ``Pipeline``
directly with injected parts instead.
"""

from __future__ import annotations

from ..settings import Settings
from .stages import Pipeline

_cache: dict[str, Pipeline] = {}


def build_store(settings: Settings):
    if settings.oss_bucket:
        from ..cloud.oss_store import OssStore

        endpoint = settings.oss_endpoint or f"https://oss-{settings.region}-internal.aliyuncs.com"
        # Links for people: the public endpoint unless one is set (an explicit OSS_ENDPOINT
        # without OSS_LINK_ENDPOINT, as in tests, serves both).
        link_endpoint = settings.oss_link_endpoint or (None if settings.oss_endpoint else f"https://oss-{settings.region}.aliyuncs.com")
        link_key = (settings.report_link_access_key_id, settings.report_link_access_key_secret) \
            if settings.report_link_access_key_id and settings.report_link_access_key_secret else None
        return OssStore.connect(endpoint, settings.oss_bucket, settings.access_key_id, settings.access_key_secret,
                                settings.security_token or None, link_endpoint=link_endpoint, link_key=link_key)
    from ..cloud.store import LocalStore

    return LocalStore(settings.store_dir)


def build_ecs(settings: Settings):
    if settings.instances_dir:
        from ..cloud.simulate import SimulatedCloud

        return SimulatedCloud.from_dir(settings.instances_dir)
    from ..cloud.ecs_sdk import SdkEcsApi

    return SdkEcsApi.from_settings(settings)


def build_invoker(settings: Settings):
    if not settings.fc_endpoint:
        return None
    from ..cloud.invoke import Fc2Invoker

    return Fc2Invoker(settings.fc_endpoint, settings.fc_service, settings.access_key_id, settings.access_key_secret,
                      settings.security_token)


def build_notifier(settings: Settings, store, *, outbox_dir: str | None = None):
    """DingTalk and email as configured (urllib, smtplib: no SDK); ``outbox_dir`` (default
    CRASHDIAG_OUTBOX_DIR) stands in for a channel that is not configured."""
    from ..notify import build_notifier as build

    return build(settings, store, outbox_dir=settings.outbox_dir if outbox_dir is None else outbox_dir)


def pipeline_for(stage: str, settings: Settings | None = None) -> Pipeline:
    """The pipeline a handler uses, built on first use and kept for the instance's life."""
    if stage not in _cache:
        s = settings or Settings.from_env()
        ecs = build_ecs(s) if stage == "collect" else None
        invoker = build_invoker(s) if stage == "ingest" else None
        store = build_store(s)
        notifier = build_notifier(s, store) if stage == "notify" else None
        _cache[stage] = Pipeline(store, ecs, invoker, s, notifier=notifier)
    return _cache[stage]
