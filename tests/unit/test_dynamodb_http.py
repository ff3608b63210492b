"""The DynamoDB wire's HTTP/1.1 exchange reads every reply as ``http.client`` reads it (the
same status, header fields, body and decision to close), on replies generated at random:
Content-Length, chunked with extensions and trailers, a body up to the end of the connection,
HTTP/1.0 and 1.1, ``Connection`` tokens, interim 100 replies, 204 and 304. A broken reply
raises the exception ``http.client`` raises for it. Over a real socket, replies dribbled a
byte at a time and kept-alive connections read request after request; the request goes out as
one message with the Host header it was signed for. Over TLS, the endpoint's certificate is
checked against the client's CA bundle."""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchdrop.tables.dynamodb_http import MAX_HEADERS, MAX_LINE, Connection


class FakeSocket:
    """A socket whose reply is ``data``; what is sent is kept."""

    def __init__(self, data: bytes):
        self.data = data
        self.sent: list[bytes] = []

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.data))  # type: ignore[arg-type]

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass


def ours(reply: bytes) -> tuple[int, dict[str, str], bytes, bool]:
    return Connection(FakeSocket(reply), "h").post("/", {}, b"{}")  # type: ignore[arg-type]


def theirs(reply: bytes) -> tuple[int, dict[str, str], bytes, bool]:
    response = http.client.HTTPResponse(FakeSocket(reply), method="POST")  # type: ignore[arg-type]
    response.begin()
    fields = {k.lower(): ", ".join(response.msg.get_all(k) or []) for k in response.msg}
    return response.status, fields, response.read(), response.will_close


token = st.text("abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=12)
value = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20).map(
    lambda v: v.replace(":", "")
)


@st.composite
def replies(draw: Any) -> bytes:
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
    status = draw(st.sampled_from([200, 204, 304, 400, 413, 500, 503]))
    body = draw(st.binary(max_size=300))
    fields = draw(st.lists(st.tuples(token.map(lambda t: "x-" + t), value), max_size=6))
    connection = draw(st.sampled_from([None, "close", "keep-alive", "Keep-Alive, foo", "CLOSE"]))
    framing = draw(st.sampled_from(["length", "chunked", "none"]))
    if connection is not None:
        fields.append(("Connection", connection))
    if status in (204, 304):  # no body, whether a length says so or not
        body, framing = b"", draw(st.sampled_from(["length", "neither"]))
    if framing == "length":
        fields.append(("Content-Length", str(len(body))))
        payload = body
    elif framing == "chunked":
        fields.append(("Transfer-Encoding", "chunked"))
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=5)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        payload = b"".join(
            b"%x%s\r\n%s\r\n" % (len(p), b";ext=1" if draw(st.booleans()) else b"", p)
            for p in pieces
            if p
        )
        payload += b"0\r\n" + (b"x-trailer: t\r\n" if draw(st.booleans()) else b"") + b"\r\n"
    else:
        payload = body
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" if draw(st.booleans()) else b""
    head = f"{version} {status} Reason Words\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
    return interim + head.encode() + b"\r\n" + payload


@settings(max_examples=300, deadline=None)
@given(replies())
def test_every_reply_reads_as_http_client_reads_it(reply: bytes) -> None:
    assert ours(reply) == theirs(reply)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"", http.client.RemoteDisconnected),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", http.client.IncompleteRead),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            http.client.IncompleteRead,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            http.client.IncompleteRead,
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", http.client.IncompleteRead),
        (b"ICY 200 OK\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 200 OK\r\nx: " + b"a" * MAX_LINE + b"\r\n\r\n", http.client.LineTooLong),
        (
            b"HTTP/1.1 200 OK\r\n" + b"x: y\r\n" * (MAX_HEADERS + 1) + b"\r\n",
            http.client.HTTPException,
        ),
    ],
    ids=repr,
)
def test_a_broken_reply_raises_what_http_client_raises(reply: bytes, error: type) -> None:
    with pytest.raises(error):
        ours(reply)
    with pytest.raises(error):
        theirs(reply)


def test_a_length_that_is_not_a_number_is_a_broken_reply() -> None:
    """Where http.client reads on to the end of the connection instead."""
    for length in (b"-1", b"12a", b"1 2"):
        with pytest.raises(http.client.HTTPException, match="Content-Length"):
            ours(b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\n\r\n0123456789ab")


def test_a_header_line_that_is_not_a_field_is_a_broken_reply() -> None:
    """Where http.client notes a defect and reads on."""
    for line in (b"no colon here", b": no name", b"x-name : space before the colon"):
        with pytest.raises(http.client.HTTPException, match="bad header line"):
            ours(b"HTTP/1.1 200 OK\r\n" + line + b"\r\nContent-Length: 0\r\n\r\n")


def test_a_header_field_with_a_line_break_is_never_sent() -> None:
    sock = FakeSocket(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    conn = Connection(sock, "h")  # type: ignore[arg-type]
    for bad in ("a\r\nX-Injected: 1", "a\nb", "a\rb"):
        with pytest.raises(ValueError, match="line break"):
            conn.post("/", {"X-Token": bad}, b"{}")
    assert sock.sent == []


class Server:
    """A socket server on 127.0.0.1 that reads requests and answers each with the next of
    ``replies``, a byte at a time when ``dribble``."""

    def __init__(self, replies: list[bytes], dribble: bool = False, context: Any = None):
        self.replies, self.dribble = list(replies), dribble
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        if context is not None:  # TLS: each connection's handshake in accept
            self.listener = context.wrap_socket(self.listener, server_side=True)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.replies:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # a client that refused the handshake
                continue
            self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            reader = conn.makefile("rb")
            while self.replies:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + reader.read(length))
                reply = self.replies.pop(0)
                if self.dribble:
                    for i in range(len(reply)):
                        conn.sendall(reply[i : i + 1])
                        time.sleep(0.0005)
                else:
                    conn.sendall(reply)

    def connect(self) -> Connection:
        return Connection(socket.create_connection(("127.0.0.1", self.port)), "db.test:4566")


def test_a_kept_alive_connection_reads_reply_after_reply_a_byte_at_a_time() -> None:
    replies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Amz-Crc32: 1\r\n\r\nfirst",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nsec\r\n3\r\nond\r\n0\r\nx-trailer: t\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 6\r\nConnection: close\r\n\r\nfourth",
    ]
    server = Server(replies, dribble=True)
    conn = server.connect()
    try:
        got = [
            conn.post("/path", {"X-Amz-Target": "T", "Authorization": "sig"}, b"{}")
            for _ in range(4)
        ]
    finally:
        conn.close()
    assert [(s, c, closing) for s, _, c, closing in got] == [
        (200, b"first", False),
        (200, b"second", False),
        (204, b"", False),
        (400, b"fourth", True),
    ]
    assert got[0][1]["x-amz-crc32"] == "1"
    assert server.requests[0] == (
        b"POST /path HTTP/1.1\r\nHost: db.test:4566\r\nX-Amz-Target: T\r\nAuthorization: sig\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )


def self_signed(tmp: Any) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batchdrop test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


def test_https_verifies_the_endpoint_as_the_client_would(tmp_path: Any) -> None:
    """Over TLS: a certificate the CA bundle vouches for is taken, one it does not is
    refused as botocore's SSLError, and ``verify: false`` takes any."""
    import ssl

    from botocore.exceptions import SSLError

    from batchdrop.tables.dynamodb_wire import Connections

    cert, key = self_signed(tmp_path)
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Server([reply, reply], context=context)
    url = f"https://127.0.0.1:{server.port}/"

    def post(verify: Any) -> tuple[int, Any, bytes]:
        wire = Connections(url, host=f"127.0.0.1:{server.port}", verify=verify,
                           connect_timeout=5, read_timeout=5)  # fmt: skip
        return wire.post(b"{}", {"X-Amz-Target": "T"})

    with pytest.raises(SSLError):
        post(True)  # the default bundle does not hold the test's certificate
    assert post(cert)[::2] == (200, b"ok")
    assert post(False)[::2] == (200, b"ok")
