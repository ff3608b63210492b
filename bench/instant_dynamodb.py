"""A DynamoDB endpoint that answers at once, for load benchmarks: ``python bench/instant_dynamodb.py
--table students --partition-key student_id --sort-key course [--port 0] [--latency-ms 8]``.

It speaks just enough of DynamoDB's JSON protocol (``X-Amz-Target: DynamoDB_20120810.<Op>``,
``application/x-amz-json-1.0``) for batchdrop's table adapter to load a file: DescribeTable (the
one table it serves, ACTIVE), BatchWriteItem (every item accepted: ``UnprocessedItems`` empty;
with ``ReturnConsumedCapacity``, one write unit an item: the bench's items are under 1 KB),
PutItem, GetItem. Signatures are not checked. A moto server stores and indexes every item and
answers a few thousand items a second; this one keeps only a 64-bit hash of each distinct key
(an open-addressing table of 8 bytes a slot: 10M keys take 256 MB, not gigabytes) and an
order-free checksum of them, so what is measured is the client. ``--keep-items`` also keeps the
items themselves (small runs: GetItem then answers them).

``--latency-ms`` holds every answer that long (a sleep, no CPU), as real DynamoDB's few
milliseconds a request do; with it, the speed-up of more consumers comes from overlapping waits.

``GET /stats`` answers ``{"requests", "items", "distinct", "checksum", "cpu_s", "first_write",
"last_write"}`` (the endpoint's CPU seconds; wall-clock times); ``GET /mark`` forgets the first
write, so the next one is timed as first. The first line
on stdout is ``listening http://127.0.0.1:PORT``. ``start()`` runs it as a subprocess.

Two servers are here: ``asyncio`` (the default: one thread, a minimal HTTP/1.1 parser) and
``thread`` (``http.server.ThreadingHTTPServer``, a thread per connection); ``--server`` picks.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
MASK64 = (1 << 64) - 1


def key_hash(values: list[str]) -> int:
    """A key's 64-bit hash (never 0, the empty slot): the same in the bench that checks it."""
    text = "\x1f".join(values).encode("utf-8")
    h = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")
    return h or 1


def attr_text(attr: dict[str, Any]) -> str:
    """A key attribute's value as text ({"S": "x"} → "x", {"N": "12"} → "12")."""
    (value,) = attr.values()
    return str(value)


class HashSet:
    """Distinct 64-bit hashes in an ``array('Q')`` with linear probing, doubled at 70% full."""

    def __init__(self, capacity: int = 1 << 16):
        self.slots = array("Q", bytes(8 * capacity))
        self.mask = capacity - 1
        self.size = 0

    def add(self, h: int) -> bool:
        slots, mask = self.slots, self.mask
        i = h & mask
        while True:
            v = slots[i]
            if v == 0:
                slots[i] = h
                self.size += 1
                if self.size * 10 > 7 * (mask + 1):
                    self._grow()
                return True
            if v == h:
                return False
            i = (i + 1) & mask

    def _grow(self) -> None:
        old = self.slots
        self.slots = array("Q", bytes(16 * len(old)))
        self.mask = 2 * len(old) - 1
        self.size = 0
        for v in old:
            if v:
                self.add(v)


@dataclass
class Store:
    """What the endpoint received: counts and key hashes, the items only with ``keep_items``."""

    table: str
    key: list[tuple[str, str]]  # (attribute, type) of the partition key, then the sort key
    keep_items: bool = False
    requests: int = 0
    writes: int = 0  # BatchWriteItem and PutItem requests
    items: int = 0
    checksum: int = 0  # the sum of the distinct keys' hashes, mod 2**64
    #: wall clock (time.time()) of the first write since the start or ``GET /mark``, of the last
    first_write: float | None = None
    last_write: float | None = None
    hashes: HashSet = field(default_factory=HashSet)
    kept: dict[int, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> dict[str, Any]:
        roles = ("HASH", "RANGE")
        return {
            "Table": {
                "TableName": self.table,
                "TableStatus": "ACTIVE",
                "KeySchema": [
                    {"AttributeName": a, "KeyType": r}
                    for (a, _), r in zip(self.key, roles, strict=False)
                ],
                "AttributeDefinitions": [
                    {"AttributeName": a, "AttributeType": t} for a, t in self.key
                ],
                "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
                "ItemCount": self.hashes.size,
            }
        }

    def key_of(self, item: dict[str, Any]) -> int:
        return key_hash([attr_text(item[a]) for a, _ in self.key])

    def put(self, items: list[dict[str, Any]]) -> None:
        hashes = [self.key_of(item) for item in items]
        with self.lock:
            self.last_write = time.time()
            if self.first_write is None:
                self.first_write = self.last_write
            self.writes += 1
            self.items += len(items)
            add = self.hashes.add
            for h in hashes:
                if add(h):
                    self.checksum = (self.checksum + h) & MASK64
            if self.keep_items:
                self.kept.update(zip(hashes, items, strict=True))

    def stats(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "requests": self.requests,
            "writes": self.writes,
            "items": self.items,
            "distinct": self.hashes.size,
            "checksum": self.checksum,
            "cpu_s": round(time.process_time(), 3),
            "first_write": self.first_write,
            "last_write": self.last_write,
        }


class DynamoError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status

    def body(self) -> bytes:
        return json.dumps({"__type": ERROR_PREFIX + self.code, "message": self.message}).encode()


def answer(store: Store, target: str, body: bytes) -> dict[str, Any]:
    """The reply to one DynamoDB request (raises DynamoError)."""
    if not target.startswith(TARGET_PREFIX):
        raise DynamoError("UnknownOperationException", f"unknown target {target!r}")
    op = target.removeprefix(TARGET_PREFIX)
    req = json.loads(body or b"{}")
    if op == "BatchWriteItem":
        out: dict[str, Any] = {}
        consumed = []
        for name, requests in req.get("RequestItems", {}).items():
            _table(store, name)
            items = [r["PutRequest"]["Item"] for r in requests if "PutRequest" in r]
            if len(requests) > 25:
                raise DynamoError("ValidationException", "Too many items requested")
            store.put(items)
            consumed.append({"TableName": name, "CapacityUnits": float(len(requests))})
        if req.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES"):
            return {"UnprocessedItems": out, "ConsumedCapacity": consumed}
        return {"UnprocessedItems": out}
    if op == "PutItem":
        _table(store, req.get("TableName", ""))
        store.put([req["Item"]])
        return {}
    if op == "DescribeTable":
        _table(store, req.get("TableName", ""))
        return store.describe()
    if op == "GetItem":
        _table(store, req.get("TableName", ""))
        item = store.kept.get(store.key_of(req["Key"]))
        return {"Item": item} if item is not None else {}
    raise DynamoError("UnknownOperationException", f"{op} is not served by this endpoint")


def _table(store: Store, name: str) -> None:
    if name != store.table:
        raise DynamoError(
            "ResourceNotFoundException", f"Requested resource not found: Table: {name} not found"
        )


def reply(store: Store, method: str, path: str, target: str, body: bytes) -> tuple[int, bytes]:
    """(status, JSON body) for one HTTP request."""
    if method == "GET":
        if path.rstrip("/") == "/stats":
            return 200, json.dumps(store.stats()).encode()
        if path.rstrip("/") == "/mark":  # the next write is a first write again
            store.first_write = None
            return 200, json.dumps(store.stats()).encode()
        return 200, b'{"healthy": true}'
    with store.lock:
        store.requests += 1
    try:
        return 200, json.dumps(answer(store, target, body), separators=(",", ":")).encode()
    except DynamoError as e:
        return e.status, e.body()
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        return 400, DynamoError("SerializationException", f"{type(e).__name__}: {e}").body()


# --- the asyncio server -----------------------------------------------------------------------


async def serve_asyncio(store: Store, host: str, port: int, latency: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                if headers.get("expect", "").lower() == "100-continue":
                    pass  # botocore sends the body with the headers for DynamoDB
                status, out = reply(store, method, path, headers.get("x-amz-target", ""), body)
                if latency:
                    await asyncio.sleep(latency)
                writer.write(
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Bad Request'}\r\n"
                    f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: {len(out)}\r\n"
                    "x-amzn-RequestId: instant\r\n\r\n".encode("latin-1")
                    + out
                )
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port, limit=1 << 22, backlog=1024)
    sock_port = server.sockets[0].getsockname()[1]
    print(f"listening http://{host}:{sock_port}", flush=True)
    async with server:
        await server.serve_forever()


# --- the threaded server ----------------------------------------------------------------------


def serve_threads(store: Store, host: str, port: int, latency: float) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: botocore keeps a pool of connections
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            target = self.headers.get("X-Amz-Target", "")
            status, out = reply(store, method, self.path, target, body)
            if latency:
                time.sleep(latency)
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def do_POST(self) -> None:
            self._answer("POST")

        def do_GET(self) -> None:
            self._answer("GET")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024

    httpd = Server((host, port), Handler)
    print(f"listening http://{host}:{httpd.server_address[1]}", flush=True)
    httpd.serve_forever()


# --- as a subprocess --------------------------------------------------------------------------


@dataclass
class Endpoint:
    url: str
    process: subprocess.Popen[str]

    def stats(self, path: str = "/stats") -> dict[str, Any]:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            data: dict[str, Any] = json.load(r)
            return data


def command(
    table: str,
    partition_key: str,
    sort_key: str | None = None,
    *,
    latency_ms: float = 0.0,
    keep_items: bool = False,
    server: str = "asyncio",
) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--table", table]
    argv += ["--partition-key", partition_key, "--latency-ms", f"{latency_ms:g}"]
    argv += ["--server", server, "--sort-key", sort_key or ""]
    return argv + (["--keep-items"] if keep_items else [])


@contextmanager
def start(
    table: str,
    partition_key: str,
    sort_key: str | None = None,
    *,
    latency_ms: float = 0.0,
    keep_items: bool = False,
    server: str = "asyncio",
) -> Iterator[Endpoint]:
    """A fresh endpoint on 127.0.0.1 and a free port, stopped on the way out."""
    argv = command(
        table, partition_key, sort_key, latency_ms=latency_ms, keep_items=keep_items, server=server
    )
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"the instant DynamoDB endpoint did not start: {line!r}")
        yield Endpoint(line.removeprefix("listening "), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _hammer(url: str, seconds: float, threads: int, first: int) -> int:
    """BatchWriteItem requests of 25 distinct items, back to back on ``threads`` keep-alive
    connections for ``seconds``: how many were answered."""
    import http.client
    from urllib.parse import urlsplit

    host = urlsplit(url)
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def loop(t: int) -> None:
        conn = http.client.HTTPConnection(host.hostname or "127.0.0.1", host.port, timeout=30)
        headers = {"X-Amz-Target": TARGET_PREFIX + "BatchWriteItem", "Content-Type": CONTENT_TYPE}
        n = first + t * 10**9
        while time.perf_counter() < stop:
            puts = [
                {"PutRequest": {"Item": {"student_id": {"S": f"A{n + i}"}, "course": {"S": "X"}}}}
                for i in range(25)
            ]
            n += 25
            conn.request("POST", "/", json.dumps({"RequestItems": {"students": puts}}), headers)
            conn.getresponse().read()
            done[t] += 1

    workers = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done)


def ceiling(server: str, latency_ms: float, clients: int, threads: int, seconds: float) -> None:
    """The endpoint's own ceiling: ``clients`` processes of ``threads`` connections each."""
    from concurrent.futures import ProcessPoolExecutor

    with start("students", "student_id", "course", latency_ms=latency_ms, server=server) as ep:
        t0 = time.perf_counter()
        with ProcessPoolExecutor(clients) as pool:
            starts = [c * 10**12 for c in range(clients)]
            runs = [pool.submit(_hammer, ep.url, seconds, threads, n) for n in starts]
            total = sum(r.result() for r in runs)
        wall = time.perf_counter() - t0
        stats = ep.stats()
    print(
        f"{server}, latency {latency_ms:g} ms, {clients} client process(es) x {threads} "
        f"connection(s): {total / seconds:,.0f} requests/s, {25 * total / seconds:,.0f} items/s "
        f"({total:,} requests in {seconds:g} s; wall {wall:.1f} s; server saw "
        f"{stats['writes']:,} writes, {stats['distinct']:,} distinct keys; its CPU "
        f"{1e6 * stats['cpu_s'] / max(1, stats['writes']):,.0f} us a request)"
    )


def parse_key(spec: str) -> tuple[str, str]:
    """``name`` or ``name:S|N|B`` → (name, type)."""
    name, _, kind = spec.partition(":")
    return name, (kind or "S").upper()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default="students")
    p.add_argument("--partition-key", default="student_id", help="NAME or NAME:S|N|B (default S)")
    p.add_argument("--sort-key", default="course", help="NAME or NAME:S|N|B; empty: none")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="hold every answer this long")
    p.add_argument("--keep-items", action="store_true", help="keep the items (small runs)")
    p.add_argument("--server", choices=("asyncio", "thread"), default="asyncio")
    p.add_argument(
        "--ceiling",
        nargs=3,
        type=float,
        metavar=("CLIENTS", "THREADS", "SECONDS"),
        help="measure: start a server, hammer it with a trivial client, print requests/s",
    )
    args = p.parse_args(argv)
    if args.ceiling:
        clients, threads, seconds = args.ceiling
        ceiling(args.server, args.latency_ms, int(clients), int(threads), seconds)
        return 0
    key = [parse_key(args.partition_key)] + ([parse_key(args.sort_key)] if args.sort_key else [])
    store = Store(args.table, key, keep_items=args.keep_items)
    latency = args.latency_ms / 1000
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        if args.server == "asyncio":
            asyncio.run(serve_asyncio(store, args.host, args.port, latency))
        else:
            serve_threads(store, args.host, args.port, latency)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
