"""One place builds the boto3 clients: endpoint, region, retries and pool decided once."""

from __future__ import annotations

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
