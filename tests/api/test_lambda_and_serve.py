"""The same app on Lambda (Mangum, API Gateway HTTP API events) and under ``batchdrop serve``."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from types import SimpleNamespace
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from batchdrop.api import lambda_handler
from batchdrop.api.app import create_app
from batchdrop.api.cli import serve

from .conftest import ODD_PARTITION, ODD_SORT


def http_api_event(raw_path: str, query: str = "") -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as the gateway sends it."""
    from urllib.parse import unquote

    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": {
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "http": {
                "method": "GET",
                "path": unquote(raw_path),
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
            },
            "requestId": "id",
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }


@pytest.fixture
def bundled(students, tmp_path, monkeypatch):
    """The Lambda handler pointed at a config file for the students data set."""
    ds, _ = students
    data = ds.config.model_dump(by_alias=True, exclude_none=True, mode="json")
    path = tmp_path / "batchdrop.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("BATCHDROP_CONFIG", str(path))
    lambda_handler.reset()
    yield ds
    lambda_handler.reset()


def test_lambda_serves_an_item_and_a_page(bundled):
    r = lambda_handler.handler(http_api_event("/items/A10002/Modern%20Forensics"), None)
    assert r["statusCode"] == 200
    assert json.loads(r["body"])["course"] == "Modern Forensics"
    r = lambda_handler.handler(http_api_event("/items/A10002", "limit=2"), None)
    body = json.loads(r["body"])
    assert r["statusCode"] == 200 and body["count"] == 2 and body["next_cursor"]


def test_lambda_keeps_a_slash_in_the_partition_through_raw_path(bundled):
    from urllib.parse import quote

    raw = f"/items/{quote(ODD_PARTITION, safe='')}/{quote(ODD_SORT, safe='')}"
    r = lambda_handler.handler(http_api_event(raw), None)
    assert r["statusCode"] == 200, r["body"]
    assert json.loads(r["body"])["student_id"] == ODD_PARTITION


def test_lambda_bad_parameter_is_400(bundled):
    r = lambda_handler.handler(http_api_event("/items/A10002", "limit=0"), None)
    assert r["statusCode"] == 400
    assert "limit" in json.loads(r["body"])["detail"]


def test_lambda_builds_the_app_once(bundled, monkeypatch):
    lambda_handler.handler(http_api_event("/health"), None)
    monkeypatch.setenv("BATCHDROP_CONFIG", "/nonexistent/batchdrop.yaml")
    r = lambda_handler.handler(http_api_event("/health"), None)
    assert r["statusCode"] == 200


def test_lambda_without_config_says_where_it_looked(monkeypatch, tmp_path):
    from batchdrop.errors import ConfigError

    monkeypatch.setenv("BATCHDROP_CONFIG", str(tmp_path / "missing.yaml"))
    lambda_handler.reset()
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        lambda_handler.handler(http_api_event("/health"), None)
    lambda_handler.reset()


# --- batchdrop serve ----------------------------------------------------------------------


@pytest.fixture
def cli_with(students):
    ds, _ = students

    @click.group()
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        ctx.obj = SimpleNamespace(config=lambda: ds.config)

    cli.add_command(serve)
    return cli


def test_serve_defaults_to_localhost_8000(cli_with, monkeypatch):
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw, app=app))
    result = CliRunner().invoke(cli_with, ["serve"])
    assert result.exit_code == 0, result.output
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 8000)
    assert "/openapi.json" in [r.path for r in seen["app"].routes]
    result = CliRunner().invoke(cli_with, ["serve", "--host", "0.0.0.0", "--port", "9001"])
    assert (seen["host"], seen["port"]) == ("0.0.0.0", 9001)
    assert CliRunner().invoke(cli_with, ["serve", "--port", "70000"]).exit_code == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_server_keeps_encoded_slashes(students):
    """Through uvicorn over HTTP on 127.0.0.1: %2F in the partition survives the server."""
    from urllib.parse import quote

    import uvicorn

    ds, _ = students
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(ds.config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        url = (
            f"http://127.0.0.1:{port}/items/{quote(ODD_PARTITION, safe='')}/"
            f"{quote(ODD_SORT, safe='')}"
        )
        with urllib.request.urlopen(url, timeout=10) as reply:
            body = json.loads(reply.read())
        assert body["student_id"] == ODD_PARTITION and body["course"] == ODD_SORT
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_serve_help_names_its_defaults(cli_with):
    out = CliRunner().invoke(cli_with, ["serve", "--help"]).output
    assert "Serve the query API" in out
    assert "127.0.0.1" in out and "8000" in out
