"""An HTTP proxy in front of the moto server that misbehaves on cue, for DynamoDB's failure paths.

batchdrop's clients are pointed at the proxy (``aws.endpoint_url``); it passes every request to
the server unchanged, except BatchWriteItem requests, which it records (their items, and the
access key that signed them) and answers as its ``script`` says, one action per request, then
``always``:

- ``""``: passed through;
- ``"throttle"``: ProvisionedThroughputExceededException (HTTP 400), nothing written;
- ``"unprocessed-all"``: every item handed back unprocessed, nothing written;
- ``"unprocessed-N"``: all but the last N items written, those N handed back;
- ``"error-500"``: InternalServerError (HTTP 500); ``"validation"``: ValidationException;
  ``"denied"``: AccessDeniedException (as real DynamoDB answers a role without the action);
- ``"hang-up"``: the connection closed without an answer;
- ``"bad-crc"``: passed through, the answer carrying a wrong ``x-amz-crc32`` (damaged on the way).

``consumed`` (when set) replaces the ConsumedCapacity of each passed-through reply with that
many units; ``bill`` replaces it with DynamoDB's own rule instead (moto answers one unit a
request, whatever it wrote): for each item written, one unit per started KB of its size.
``charged`` sums the units of every BatchWriteItem reply passed on, however they were counted.
A Scan is refused and counted: batchdrop must never Scan.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
CREDENTIAL = re.compile(r"Credential=([^/]+)/")


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item in its wire form (the kinds batchdrop writes)."""
    size = 0
    for name, value in item.items():
        ((kind, v),) = value.items()
        size += len(name.encode("utf-8"))
        if kind == "S":
            size += len(v.encode("utf-8"))
        elif kind == "N":
            size += (sum(c.isdigit() for c in v) + 1) // 2 + 1
        else:
            size += 1
    return size


class FaultProxy:
    def __init__(self, upstream: str, *, bill: bool = False):
        self.upstream = urlsplit(upstream)
        self.bill = bill
        self.charged = 0.0
        self.calls = 0  # BatchWriteItem replies of 200 passed on
        self.script: list[str] = []
        self.always = ""
        self.consumed: float | None = None
        self.batches: list[list[dict[str, Any]]] = []
        self.signers: list[str] = []  # the access key of each BatchWriteItem
        self.targets: list[str] = []  # every operation asked for, in order
        self.scans = 0
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what it does with one request ---------------------------------------------------------

    def forward(self, method: str, path: str, headers: dict[str, str], data: bytes) -> Any:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            conn.request(method, path, data, headers)
            reply = conn.getresponse()
            return reply.status, dict(reply.getheaders()), reply.read()
        finally:
            conn.close()

    def batch(self, method: str, path: str, headers: dict[str, str], data: bytes) -> Any:
        request = json.loads(data)
        ((table, requests),) = request["RequestItems"].items()
        with self.lock:
            self.batches.append([r["PutRequest"]["Item"] for r in requests])
            match = CREDENTIAL.search(headers.get("Authorization", ""))
            self.signers.append(match.group(1) if match else "")
            action = self.script.pop(0) if self.script else self.always
        if action == "throttle":
            return error(400, "ProvisionedThroughputExceededException", "slow down")
        if action == "error-500":
            return error(500, "InternalServerError", "try again")
        if action == "denied":
            return error(400, "AccessDeniedException", "not authorized to perform BatchWriteItem")
        if action == "validation":
            return error(400, "ValidationException", "One or more parameter values were invalid")
        if action == "hang-up":
            return None
        if action == "unprocessed-all":
            return answer({"UnprocessedItems": {table: requests}})
        left: list[Any] = []
        if action.startswith("unprocessed-"):
            keep = len(requests) - int(action.split("-")[1])
            requests, left = requests[:keep], requests[keep:]
            request["RequestItems"] = {table: requests}
            data = json.dumps(request).encode()
            headers = {**headers, "Content-Length": str(len(data))}
        status, out_headers, out = self.forward(method, path, headers, data)
        if action == "bad-crc":
            out_headers = {**out_headers, "x-amz-crc32": str((zlib.crc32(out) + 1) % 2**32)}
        if status != 200:
            return status, out_headers, out
        reply = json.loads(out)
        if left:
            reply["UnprocessedItems"] = {table: left}
        if self.bill:
            units = sum(math.ceil(item_size(r["PutRequest"]["Item"]) / 1024) for r in requests)
            reply["ConsumedCapacity"] = [{"TableName": table, "CapacityUnits": float(units)}]
        elif self.consumed is not None:
            reply["ConsumedCapacity"] = [{"TableName": table, "CapacityUnits": self.consumed}]
        with self.lock:
            self.calls += 1
            self.charged += sum(c["CapacityUnits"] for c in reply.get("ConsumedCapacity", []))
        if not (left or self.bill or self.consumed is not None or action == "bad-crc"):
            return status, out_headers, out
        return answer(reply) if action != "bad-crc" else (status, out_headers, out)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                target = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                with proxy.lock:
                    proxy.targets.append(target)
                if target == "Scan":
                    with proxy.lock:
                        proxy.scans += 1
                    found = error(400, "ValidationException", "batchdrop must never Scan")
                elif target == "BatchWriteItem":
                    found = proxy.batch(self.command, self.path, headers, data)
                else:
                    found = proxy.forward(self.command, self.path, headers, data)
                if found is None:
                    self.close_connection = True
                    return
                status, out_headers, out = found
                self.send_response(status)
                # a HEAD reply has no body, and keeps the length of what a GET would give
                mine = ("connection", "transfer-encoding")
                if self.command != "HEAD":
                    mine += ("content-length",)
                for k, v in out_headers.items():
                    if k.lower() not in mine:
                        self.send_header(k, v)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_POST = do_GET = do_PUT = do_DELETE = do_HEAD = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def answer(reply: dict[str, Any], status: int = 200) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(reply).encode()


def error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    return answer({"__type": ERROR_PREFIX + code, "message": message}, status)
