"""botocore's SigV4 signing, without the work that is the same for every request of a load.

``SigV4Auth.add_auth`` computes the signature of a request from scratch: it copies the headers
into an ``email.message``-backed map twice, parses the URL for the host three times and derives
the signing key with four HMACs, which together cost more CPU than the rest of a BatchWriteItem
request. ``Signer`` is botocore's own ``SigV4Auth`` (the canonical request, the string to sign,
the signature and its header are botocore's code), with three of its steps done once:

- the headers to sign come from a plain dict of the request's headers (one value each, as
  the wire's requests have), the host from the endpoint known once;
- the canonical headers and the signed headers are made from that dict, by the rules
  botocore's methods follow (lower-case names, sorted; values with their runs of white space
  made one space);
- the signing key is kept for its day, region, service and secret key.

tests/unit/test_dynamodb_sign.py holds every signature to ``SigV4Auth``'s for the same request
at the same time.
"""

from __future__ import annotations

import hmac
from hashlib import sha256
from typing import Any

from botocore.auth import SIGNED_HEADERS_BLACKLIST, SigV4Auth, _host_from_url

__all__ = ["Signer"]

_SKIPPED = frozenset(SIGNED_HEADERS_BLACKLIST)
#: signing keys by (secret key, day, region, service): a load needs one a day
_KEYS: dict[tuple[str, str, str, str], bytes] = {}
_MAX_KEYS = 16


class Signer(SigV4Auth):
    """``SigV4Auth`` for requests to one endpoint whose headers are a plain dict."""

    def __init__(self, credentials: Any, service_name: str, region_name: str, host: str):
        super().__init__(credentials, service_name, region_name)
        self._host = host

    @classmethod
    def host_of(cls, url: str) -> str:
        """The Host header botocore signs for ``url``."""
        return str(_host_from_url(url))

    def headers_to_sign(self, request: Any) -> dict[str, str]:  # type: ignore[override]
        headers = {}
        for name, value in request.headers.items():
            lname = name.lower()
            if lname not in _SKIPPED:
                headers[lname] = value
        headers.setdefault("host", self._host)
        return headers

    def canonical_headers(self, headers_to_sign: dict[str, str]) -> str:  # type: ignore[override]
        return "\n".join(
            f"{name}:{' '.join(headers_to_sign[name].split())}" for name in sorted(headers_to_sign)
        )

    def signed_headers(self, headers_to_sign: dict[str, str]) -> str:  # type: ignore[override]
        return ";".join(sorted(name.strip() for name in headers_to_sign))

    def signature(self, string_to_sign: str, request: Any) -> str:
        secret = self.credentials.secret_key
        day = request.context["timestamp"][0:8]
        cached = (secret, day, self._region_name, self._service_name)
        key = _KEYS.get(cached)
        if key is None:
            k_date = self._sign(f"AWS4{secret}".encode(), day)
            k_region = self._sign(k_date, self._region_name)
            k_service = self._sign(k_region, self._service_name)
            key = self._sign(k_service, "aws4_request")
            if len(_KEYS) >= _MAX_KEYS:
                _KEYS.clear()
            _KEYS[cached] = key
        return hmac.new(key, string_to_sign.encode("utf-8"), sha256).hexdigest()
