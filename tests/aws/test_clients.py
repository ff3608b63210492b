"""One place builds the boto3 clients: endpoint, region, retries and pool decided once."""

from __future__ import annotations

from typing import Any

import pytest

from batchdrop.aws import clients
from batchdrop.config import parse_config

BASE = {
    "inbound": "s3://in/",
    "archive": "s3://a/",
    "errors": "s3://e/",
    "table": {"url": "dynamodb://t", "partition_key": "id"},
    "schema": {"fields": [{"name": "id"}]},
}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clients.clear_cache()


def test_endpoint_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert clients.endpoint_url("s3") is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert clients.endpoint_url("s3") == "http://127.0.0.1:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2")
    assert clients.endpoint_url("s3") == "http://127.0.0.1:2"
    assert clients.endpoint_url("dynamodb") == "http://127.0.0.1:1"
    config = parse_config({**BASE, "aws": {"endpoint_url": "http://127.0.0.1:3"}}, environ={})
    assert clients.endpoint_url("s3", config) == "http://127.0.0.1:3"


def test_client_settings_and_sharing(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(
        {
            **BASE,
            "aws": {"endpoint_url": "http://127.0.0.1:3", "region": "eu-west-1", "max_workers": 16},
        },
        environ={},
    )
    s3 = clients.client("s3", config)
    assert s3.meta.endpoint_url == "http://127.0.0.1:3"
    assert s3.meta.region_name == "eu-west-1"
    assert s3.meta.config.retries["mode"] == "standard"
    assert s3.meta.config.max_pool_connections >= 16
    assert s3.meta.config.s3["addressing_style"] == "path"
    assert clients.client("s3", config) is s3
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert clients.client("sns").meta.region_name == "us-west-2"


def test_trimmed_endpoint_data_resolves_every_region_as_the_whole_file() -> None:
    """The loader keeps only ``SERVICES`` of botocore's endpoint data; for those services every
    region of every partition (with FIPS and dual-stack) resolves exactly as with the whole file."""
    import copy

    import botocore.loaders
    from botocore.regions import EndpointResolver

    loader = botocore.loaders.create_loader()
    whole = loader.load_data("endpoints")
    partitions = loader.load_data("partitions")
    trimmed = clients.trim_endpoints(copy.deepcopy(whole))
    full, cut = EndpointResolver(whole, partitions), EndpointResolver(trimmed, partitions)
    regions = {r for p in whole["partitions"] for r in p["regions"]}
    assert len(regions) > 20
    for service in sorted(clients.SERVICES):
        for region in sorted(regions):
            for fips, dual in ((False, False), (True, False), (False, True)):
                want = _resolve(full, service, region, fips, dual)
                got = _resolve(cut, service, region, fips, dual)
                assert got == want, (service, region, fips, dual)
    kept = {s for p in trimmed["partitions"] for s in p["services"]}
    assert kept <= clients.SERVICES
    assert len(str(trimmed)) < len(str(whole)) / 5  # the point: a fifth of the data, or less


def _resolve(resolver: Any, service: str, region: str, fips: bool, dual: bool) -> object:
    try:
        return resolver.construct_endpoint(
            service, region, use_fips_endpoint=fips, use_dualstack_endpoint=dual
        )
    except Exception as e:  # a variant the service lacks: the same refusal from both
        return (type(e).__name__, str(e))


def test_the_loader_trims_what_it_caches_and_refuses_other_services() -> None:
    client = clients.client("s3")
    assert client.meta.service_model.service_name == "s3"
    data = clients._loader.load_data("endpoints")
    assert {s for p in data["partitions"] for s in p["services"]} <= clients.SERVICES
    with pytest.raises(ValueError, match="not one of the services"):
        clients.client("ec2")


def test_every_service_the_source_calls_is_kept() -> None:
    """``client("x")`` anywhere in the runtime names a service whose endpoint data is kept."""
    import re
    from pathlib import Path

    import batchdrop

    root = Path(batchdrop.__file__).parent
    called = {
        m
        for path in root.rglob("*.py")
        if "deploy" not in path.parts  # deploy builds its own boto3 session (the whole data)
        for m in re.findall(r"\bclient\(\s*\"([a-z0-9-]+)\"", path.read_text())
    }
    assert called, "no client(...) call found: the pattern is stale"
    assert called <= clients.SERVICES
