"""The wire's signer signs exactly as botocore's ``SigV4Auth``: for the same request at the
same moment, every header it sets (Authorization, X-Amz-Date, X-Amz-Security-Token) is the one
botocore sets on its own ``AWSRequest``: any endpoint (a port, the default port, HTTPS, IPv6),
credentials with and without a session token, header values with runs of white space, empty
and non-ASCII bodies, and a signing key kept from one day to the next."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore import auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from batchdrop.tables.dynamodb_sign import Signer
from batchdrop.tables.dynamodb_wire import _Request

URLS = [
    "https://dynamodb.eu-west-1.amazonaws.com/",
    "https://dynamodb.eu-west-1.amazonaws.com:443/",
    "http://127.0.0.1:8000/",
    "http://localhost/",
    "http://LocalHost:80/path/to/ddb",
    "https://[::1]:4566/",
    "https://vpce-1a2b.dynamodb.us-east-1.vpce.amazonaws.com/",
]
header_text = st.text(
    st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=30
).filter(str.strip)


def signed(signer: Any, request: Any, when: dt.datetime, mp: pytest.MonkeyPatch) -> dict[str, str]:
    mp.setattr(auth, "get_current_datetime", lambda: when)
    signer.add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


@settings(max_examples=200, deadline=None)
@given(
    url=st.sampled_from(URLS),
    region=st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2"]),
    service=st.sampled_from(["dynamodb", "execute-api"]),
    token=st.one_of(st.none(), header_text),
    secret=header_text,
    extra=st.dictionaries(
        st.sampled_from(["X-Amz-Target", "User-Agent", "X-Custom", "Connection", "Expect"]),
        header_text.map(lambda v: f"  {v}   two  spaces "),
        max_size=4,
    ),
    body=st.one_of(st.binary(max_size=300), st.text(max_size=50).map(str.encode)),
    when=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2035, 1, 1)),
)
def test_every_signature_is_botocores(
    url: str,
    region: str,
    service: str,
    token: str | None,
    secret: str,
    extra: dict[str, str],
    body: bytes,
    when: dt.datetime,
) -> None:
    credentials = Credentials("AKIDEXAMPLE", secret, token).get_frozen_credentials()
    headers = {"Content-Type": "application/x-amz-json-1.0", **extra}
    mp = pytest.MonkeyPatch()

    def both(when: dt.datetime) -> tuple[dict[str, str], dict[str, str]]:
        theirs = AWSRequest("POST", url, data=body, headers=dict(headers))
        ours = _Request(url, body, dict(headers))
        return (
            signed(Signer(credentials, service, region, Signer.host_of(url)), ours, when, mp),
            signed(auth.SigV4Auth(credentials, service, region), theirs, when, mp),
        )

    try:
        ours, theirs = both(when)
        # the key kept from the first request signs the next one, the day after too
        ours_later, theirs_later = both(when + dt.timedelta(days=1))
    finally:
        mp.undo()
    assert ours == theirs
    assert ours_later == theirs_later
    assert ours["authorization"] != ours_later["authorization"]


def test_a_new_secret_key_signs_with_a_new_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refreshed credentials: the kept signing key is the old secret's, so it is not used."""
    when = dt.datetime(2026, 11, 29, 12, 0, 0)
    url = URLS[0]
    out = []
    for secret in ("first-secret", "second-secret", "first-secret"):
        credentials = Credentials("AKID", secret, "tok").get_frozen_credentials()
        ours = signed(
            Signer(credentials, "dynamodb", "us-east-1", Signer.host_of(url)),
            _Request(url, b"{}", {}),
            when,
            monkeypatch,
        )
        theirs = signed(
            auth.SigV4Auth(credentials, "dynamodb", "us-east-1"),
            AWSRequest("POST", url, data=b"{}", headers={}),
            when,
            monkeypatch,
        )
        assert ours == theirs
        out.append(ours["authorization"])
    assert out[0] != out[1] and out[0] == out[2]
