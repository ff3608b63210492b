"""One HTTP/1.1 exchange at a time on a kept-alive connection, for the DynamoDB wire.

``http.client`` cost more CPU per BatchWriteItem than building and signing it: a ``putheader``
call per header, each checked with regular expressions, the head and the body in two sends, and
the reply's header fields parsed by the ``email`` package. Here a request is written in one
send, and its reply read by the rules of RFC 9112 a JSON API's replies need:

- the status line (``HTTP/1.x``, three digits); interim 1xx replies are read past;
- header fields, at most ``MAX_HEADERS`` of at most ``MAX_LINE`` bytes each, names taken in lower
  case, a repeated field's values joined by commas;
- the body: by the chunked transfer coding (its trailer fields read past), by
  ``Content-Length``, or, without either, up to the end of the connection; none for 1xx, 204 and
  304;
- the connection is closed after a reply that says ``Connection: close``, an HTTP/1.0 reply
  without keep-alive, or a body read to the end of the connection.

A fault is raised as ``http.client`` raises it for the same fault (``RemoteDisconnected`` when
the server closed the connection before replying, ``BadStatusLine``, ``LineTooLong``,
``IncompleteRead``), a timeout or a socket error as the socket raises it; the caller turns them
into botocore's exceptions (dynamodb_wire.Connections).
"""

from __future__ import annotations

import http.client
import socket
from typing import Any

__all__ = ["MAX_HEADERS", "MAX_LINE", "Connection"]

MAX_LINE = 65536  # as http.client
MAX_HEADERS = 100
_ENDS = (b"\r\n", b"\n")


class Connection:
    """A socket (plain or TLS, connected) to one endpoint, whose Host header is ``host``."""

    def __init__(self, sock: socket.socket, host: str):
        self.sock = sock
        self.host = host
        self._reader = sock.makefile("rb")

    def close(self) -> None:
        self._reader.close()
        self.sock.close()

    def post(self, path: str, headers: dict[str, str], data: bytes) -> tuple[int, Any, bytes, bool]:
        """POST ``data`` to ``path``: the reply's status, header fields (a dict, names in lower
        case), body, and whether the connection must be closed after it."""
        head = "".join([f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"] +
                       [f"{name}: {value}\r\n" for name, value in headers.items()] +
                       [f"Content-Length: {len(data)}\r\n\r\n"])  # fmt: skip
        lines = len(headers) + 4  # the request line, Host, the fields, Content-Length, the end
        if head.count("\n") != lines or head.count("\r") != lines:
            raise ValueError("a header field holds a line break")  # never sent: a new request
        self.sock.sendall(head.encode("latin-1") + data)
        return self._reply()

    def _reply(self) -> tuple[int, dict[str, str], bytes, bool]:
        reader = self._reader
        while True:
            line = reader.readline(MAX_LINE + 1)
            if not line:
                raise http.client.RemoteDisconnected(
                    "Remote end closed connection without response"
                )
            if len(line) > MAX_LINE:
                raise http.client.LineTooLong("status line")
            version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
            code = rest[:3]
            if (
                version not in ("HTTP/1.1", "HTTP/1.0")
                or not (code.isdigit() and code.isascii())
                or rest[3:4] not in ("", " ")
            ):
                raise http.client.BadStatusLine(repr(line))
            status = int(code)
            headers = self._fields()
            if not 100 <= status < 200:
                break  # else an interim reply (100 Continue): the final one follows
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        closing = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)
        coding = headers.get("transfer-encoding")
        if status in (204, 304):
            content = b""
        elif coding is not None and coding.rsplit(",", 1)[-1].strip().lower() == "chunked":
            content = self._chunked()
        elif coding is None and "content-length" in headers:
            length = headers["content-length"]
            if not (length.isdigit() and length.isascii()):
                raise http.client.HTTPException(f"bad Content-Length: {length!r}")
            content = self._exactly(int(length))
        else:  # no length given: the body ends with the connection
            content, closing = reader.read(), True
        return status, headers, content, closing

    def _fields(self) -> dict[str, str]:
        """Header (or trailer) fields, up to the empty line."""
        reader = self._reader
        fields: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = reader.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                raise http.client.LineTooLong("header line")
            if not line or line in _ENDS:
                return fields  # the connection ended: the body's read then says so
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not name or name != name.strip():
                raise http.client.HTTPException(f"bad header line: {line[:100]!r}")
            key, value = name.lower(), value.strip()
            fields[key] = f"{fields[key]}, {value}" if key in fields else value
        raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")

    def _exactly(self, n: int, before: bytes = b"") -> bytes:
        data = self._reader.read(n)
        if len(data) < n:
            raise http.client.IncompleteRead(before + data, n - len(data))
        return data

    def _chunked(self) -> bytes:
        reader = self._reader
        parts: list[bytes] = []
        while True:
            line = reader.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                raise http.client.LineTooLong("chunk size")
            size = line.split(b";", 1)[0].strip()
            if not size or size.strip(b"0123456789abcdefABCDEF"):
                raise http.client.IncompleteRead(b"".join(parts))
            n = int(size, 16)
            if not n:
                break
            parts.append(self._exactly(n, b"".join(parts)))
            if reader.readline(3) not in _ENDS:
                raise http.client.IncompleteRead(b"".join(parts))
        self._fields()  # the trailer
        return b"".join(parts)
