"""Shared fixtures. ``moto_server``: a real moto server process on 127.0.0.1, spoken to over HTTP;
``iam_moto_server``: a second one that enforces IAM.

The AWS tests go through the whole botocore stack (HTTP, retries, threads) against these
servers; nothing is patched in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DATA = Path(__file__).resolve().parent / "data"


MOTO_SERVER = Path(__file__).with_name("moto_server.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_moto(env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A moto server on a free port of 127.0.0.1, once it answers."""
    port = _free_port()
    proc = subprocess.Popen(
        # moto's server, with a race of its DynamoDB fixed (tests/moto_server.py)
        [sys.executable, str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the moto server did not start") from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto server started for this test session (one per xdist worker)."""
    proc, url = _start_moto()
    try:
        yield url
    finally:
        _stop(proc)


@dataclass(frozen=True)
class IamServer:
    """A moto server that enforces IAM, and the keys of its administrator."""

    url: str
    admin_key: str
    admin_secret: str
    _clients: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def client(self, service: str) -> Any:
        """A client for ``service`` signed by the administrator (who may do anything); one per
        service for the session, since making one costs a tenth of a second."""
        import boto3
        from botocore.config import Config

        if service in self._clients:
            return self._clients[service]
        self._clients[service] = made = boto3.session.Session().client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.admin_key,
            aws_secret_access_key=self.admin_secret,
            config=Config(s3={"addressing_style": "path"}),
        )
        return made

    @contextlib.contextmanager
    def unenforced(self) -> Iterator[None]:
        """IAM not enforced for a while: moto's Lambda API fails every signature check when
        IAM is enforced (moto 5.2), so a function's configuration is read back this way."""

        def set_free_requests(count: str) -> None:
            req = urllib.request.Request(
                self.url + "/moto-api/reset-auth",
                data=count.encode(),
                method="POST",
                headers={"Content-Type": "text/plain"},  # a form body would be parsed away
            )
            urllib.request.urlopen(req, timeout=10).close()

        set_free_requests("inf")
        try:
            yield
        finally:
            set_free_requests("0")


#: requests moto serves before it starts to enforce IAM: exactly the administrator's creation
_BOOTSTRAP_REQUESTS = 3


@pytest.fixture(scope="session")
def iam_moto_server() -> Iterator[IamServer]:
    """A second moto server, which checks every request's signature and the caller's policies.

    moto enforces IAM once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests have been served: the
    first three create an administrator (a user allowed ``*`` on ``*``) and its keys; every
    request after that must be signed by a user moto knows and be allowed by that user's
    policies. Tests create their resources as the administrator and run batchdrop as a user
    holding only what the template grants (``tests/aws/iam.py``).
    """
    import boto3
    from botocore.exceptions import ClientError

    proc, url = _start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": str(_BOOTSTRAP_REQUESTS)})
    try:
        iam = boto3.session.Session().client(
            "iam",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="admin")
        iam.put_user_policy(
            UserName="admin",
            PolicyName="everything",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        server = IamServer(url, key["AccessKeyId"], key["SecretAccessKey"])
        try:  # from here on, a stranger is refused: the server really enforces
            iam.list_users()
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidClientTokenId", e
        else:
            raise RuntimeError("the moto server does not enforce IAM")
        yield server
    finally:
        _stop(proc)


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 (and batchdrop) at the moto server with fake credentials."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server


@pytest.fixture
def unique() -> str:
    """A short unique suffix for AWS resource names, so tests sharing a server do not collide."""
    return uuid.uuid4().hex[:10]
