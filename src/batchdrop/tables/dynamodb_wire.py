"""BatchWriteItem without botocore's per-call machinery (parameter validation, serialisation,
event handlers, its HTTP layer): the request body comes ready from ``dynamodb_body``, is
signed with botocore's ``SigV4Auth`` (``dynamodb_sign.Signer``: what is the same for every
request done once) and the client's own credentials (frozen per request, so refreshable
credentials are refreshed), and goes out on keep-alive connections to the client's
endpoint, with its timeouts and its TLS verification (its CA bundle; through botocore's own HTTP
session when a proxy applies). Everything else DynamoDB is asked goes through the client.

A refusal is raised as botocore's ``ClientError`` and a connection failure as botocore's own
exceptions, so ``aws.clients.error_code`` and ``is_transient`` classify both as for any call.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import zlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from .dynamodb_body import body
from .dynamodb_http import Connection

__all__ = ["ClientSender", "WireSender", "sender"]

TARGET = "DynamoDB_20120810.BatchWriteItem"
PUT_TARGET = "DynamoDB_20120810.PutItem"
CONTENT_TYPE = "application/x-amz-json-1.0"


class WireSender:
    """BatchWriteItem requests to a botocore client's endpoint, signed as it signs."""

    def __init__(self, client: Any):
        from .dynamodb_sign import Signer

        signer = client._request_signer
        self.credentials = signer._credentials
        if self.credentials is None:  # the client says why when it is called
            raise AttributeError("no credentials")
        self.region = signer.region_name or client.meta.region_name
        self.service = signer.signing_name or "dynamodb"
        url = client.meta.endpoint_url
        self.url = url if urlsplit(url).path else url + "/"
        config = client.meta.config
        self.headers = {
            "X-Amz-Target": TARGET,
            "Content-Type": CONTENT_TYPE,
            "User-Agent": f"{config.user_agent_extra or 'batchdrop'} batchdrop-wire",
        }
        self._auth = Signer
        self._host = Signer.host_of(self.url)
        session = client._endpoint.http_session
        if session._proxy_config.proxy_url_for(self.url):
            # through a proxy: botocore's own session knows how to reach it
            self._post = self._via_session(session)
        else:
            self._post = Connections(
                self.url,
                host=self._host,
                verify=session._verify,
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
            ).post

    def send(self, table: str, items: Sequence[str], *, delete: bool = False) -> dict[str, Any]:
        """The reply of one BatchWriteItem putting ``items`` (JSON texts) into ``table``, or
        with ``delete`` deleting the items whose keys they are."""
        return self._call(TARGET, body(table, items, delete=delete))

    def put(self, data: bytes) -> dict[str, Any]:
        """The reply of one PutItem (its body from ``dynamodb_body.put_body``)."""
        return self._call(PUT_TARGET, data)

    def _call(self, target: str, data: bytes) -> dict[str, Any]:
        headers = dict(self.headers)
        headers["X-Amz-Target"] = target
        request = _Request(self.url, data, headers)
        credentials = self.credentials.get_frozen_credentials()
        self._auth(credentials, self.service, self.region, self._host).add_auth(request)
        status, headers, content = self._post(request.body, request.headers)
        checksum = headers.get("x-amz-crc32")  # a dict of lower-case names, or botocore's
        if checksum is not None and zlib.crc32(content) != int(checksum):
            from botocore.exceptions import ChecksumError

            raise ChecksumError(
                checksum_type="crc32", expected_checksum=checksum, actual_checksum=""
            )
        if status == 200:
            answer: dict[str, Any] = json.loads(content)
            return answer
        raise refusal(status, content, headers, target.rsplit(".", 1)[-1])

    def _via_session(self, session: Any) -> Any:
        from botocore.awsrequest import AWSRequest

        def post(data: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
            reply = session.send(AWSRequest("POST", self.url, data=data, headers=headers).prepare())
            return reply.status_code, reply.headers, reply.content

        return post


class _Request:
    """What ``SigV4Auth.add_auth`` reads and writes of a request, with plain dict headers
    (botocore's AWSRequest keeps them in an email.message, which costs more than the signing)."""

    __slots__ = ("body", "context", "headers", "method", "params", "url")

    def __init__(self, url: str, data: bytes, headers: dict[str, str]):
        self.method, self.url, self.body, self.headers = "POST", url, data, headers
        self.params: dict[str, Any] = {}
        self.context: dict[str, Any] = {}


class Connections:
    """Keep-alive HTTP(S) connections to one endpoint (dynamodb_http.py), each used by one
    request at a time; the Host header is ``host``, the one the requests are signed for.

    A connection that fails is closed and dropped; one that the server had closed while it was
    idle is replaced once at no cost (its request never reached the server's handler).
    Failures are raised as botocore's exceptions for the same faults."""

    def __init__(
        self, url: str, *, host: str, verify: Any, connect_timeout: float, read_timeout: float
    ):
        parts = urlsplit(url)
        self.url = url
        self.https = parts.scheme == "https"
        self.hostname = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.host = host
        self.path = parts.path or "/"
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self._idle: list[Connection] = []
        self._context: ssl.SSLContext | None = None
        if self.https:
            if verify is False:
                self._context = ssl._create_unverified_context()
            else:
                from botocore.httpsession import get_cert_path

                self._context = ssl.create_default_context(cafile=get_cert_path(verify))

    def post(self, data: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        try:
            conn, fresh = self._idle.pop(), False
        except IndexError:
            conn, fresh = self._connect(), True
        try:
            try:
                reply = conn.post(self.path, headers, data)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                if fresh:
                    raise
                conn = self._connect()  # closed by the server while idle
                reply = conn.post(self.path, headers, data)
        except ValueError:  # a header field with a line break: nothing was sent
            conn.close()
            raise
        except ssl.SSLError as e:
            conn.close()
            from botocore.exceptions import SSLError

            raise SSLError(endpoint_url=self.url, error=e) from e
        except TimeoutError as e:
            conn.close()
            from botocore.exceptions import ReadTimeoutError

            raise ReadTimeoutError(endpoint_url=self.url, error=e) from e
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            from botocore.exceptions import ConnectionClosedError

            raise ConnectionClosedError(endpoint_url=self.url, error=e) from e
        status, reply_headers, content, closing = reply
        if closing:
            conn.close()
        else:
            self._idle.append(conn)
        return status, reply_headers, content

    def _connect(self) -> Connection:
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((self.hostname, self.port), self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                sock = self._context.wrap_socket(sock, server_hostname=self.hostname)
        except ssl.SSLError as e:
            if sock is not None:
                sock.close()
            from botocore.exceptions import SSLError

            raise SSLError(endpoint_url=self.url, error=e) from e
        except OSError as e:
            if sock is not None:
                sock.close()
            from botocore.exceptions import EndpointConnectionError

            raise EndpointConnectionError(endpoint_url=self.url, error=e) from e
        sock.settimeout(self.read_timeout)
        return Connection(sock, self.host)


def refusal(
    status: int, content: bytes, headers: Any, operation: str = "BatchWriteItem"
) -> Exception:
    """DynamoDB's error reply as the ClientError botocore would raise for it."""
    from botocore.exceptions import ClientError

    try:
        data = json.loads(content)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {}
    code = str(data.get("__type") or headers.get("x-amzn-errortype") or status)
    code = code.rsplit("#", 1)[-1].split(":", 1)[0]
    message = str(data.get("message") or data.get("Message") or "")
    meta = {"HTTPStatusCode": status, "RequestId": headers.get("x-amzn-requestid", "")}
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": meta},  # type: ignore[typeddict-item]
        operation,
    )


class ClientSender:
    """The same requests through ``client.batch_write_item``, for a client that is not
    botocore's (a test double, a wrapper)."""

    def __init__(self, client: Any):
        self.client = client

    def send(self, table: str, items: Sequence[str], *, delete: bool = False) -> dict[str, Any]:
        if delete:
            requests = [{"DeleteRequest": {"Key": json.loads(key)}} for key in items]
        else:
            requests = [{"PutRequest": {"Item": json.loads(item)}} for item in items]
        reply: dict[str, Any] = self.client.batch_write_item(
            RequestItems={table: requests}, ReturnConsumedCapacity="TOTAL"
        )
        return reply

    def put(self, data: bytes) -> dict[str, Any]:
        reply: dict[str, Any] = self.client.put_item(**json.loads(data))
        return reply


def sender(client: Any) -> WireSender | ClientSender:
    """The wire for a botocore client; the client's own method for anything else."""
    try:
        from botocore.client import BaseClient
    except ImportError:  # pragma: no cover - the AWS extra is installed with DynamoDB
        return ClientSender(client)
    if not isinstance(client, BaseClient):
        return ClientSender(client)
    try:
        return WireSender(client)
    except AttributeError:  # no credentials, or a botocore without the parts the wire borrows
        return ClientSender(client)


def unprocessed(reply: dict[str, Any], table: str) -> list[str]:
    """The items (or, of deletes, the keys) of ``reply`` handed back unprocessed, as JSON
    texts."""
    requests = (reply.get("UnprocessedItems") or {}).get(table) or []
    return [
        json.dumps(
            r["PutRequest"]["Item"] if "PutRequest" in r else r["DeleteRequest"]["Key"],
            separators=(",", ":"),
        )
        for r in requests
    ]


def consumed(reply: dict[str, Any], table: str) -> float | None:
    """The write units ``reply`` says were consumed in ``table`` (None: it does not say)."""
    found = reply.get("ConsumedCapacity")
    if not found:
        return None
    if isinstance(found, dict):  # PutItem's: one table's, not a list
        found = [found]
    return float(
        sum(c.get("CapacityUnits") or 0 for c in found if c.get("TableName", table) == table)
    )
