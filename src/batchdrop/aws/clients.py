"""The one place that builds AWS clients.

Every AWS call batchdrop makes goes through ``client()``, so the endpoint (``aws.endpoint_url`` in
the config, else ``AWS_ENDPOINT_URL_<SERVICE>`` / ``AWS_ENDPOINT_URL``), the region (``aws.region``,
else the usual boto3 chain), retries and the connection pool are decided once. botocore is imported
here, lazily, so local mode never pays for it.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config

_lock = threading.Lock()
_cache: dict[tuple[Any, ...], Any] = {}
_loader: Any = None

#: The services the runtime calls. botocore's endpoint data describes every AWS service and costs a
#: process about 7 MB once parsed; the shared loader keeps only these services' entries, which
#: resolve exactly as with the whole file (tests/unit/test_clients.py compares every region).
SERVICES = frozenset({"dynamodb", "s3", "sns", "sqs", "ssm", "sts"})

#: botocore's own retries (standard mode: throttling, 5xx, connection errors) before ours.
BOTOCORE_MAX_ATTEMPTS = 4


def endpoint_url(service: str, config: Config | None = None) -> str | None:
    """Where ``service`` is reached: the config's endpoint, else the environment, else AWS."""
    if config is not None and config.aws.endpoint_url:
        return config.aws.endpoint_url
    env_service = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    return os.environ.get(env_service) or os.environ.get("AWS_ENDPOINT_URL") or None


def region(config: Config | None = None) -> str | None:
    if config is not None and config.aws.region:
        return config.aws.region
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def client(service: str, config: Config | None = None, *, pool: int | None = None) -> Any:
    """A thread-safe botocore client for ``service``, shared by every caller with the same settings.

    ``pool`` is the number of HTTP connections to keep; it should cover the requests a caller
    keeps in flight at once (``aws.max_workers``), plus some for the other threads.
    """
    if service not in SERVICES:
        raise ValueError(f"{service!r} is not one of the services batchdrop calls (SERVICES)")
    workers = config.aws.max_workers if config is not None else 4
    size = max(pool or 0, workers * 2 + 2, 10)
    endpoint = endpoint_url(service, config)
    where = region(config)
    creds = (os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_PROFILE"))
    key = (service, endpoint, where, size, creds)
    with _lock:
        found = _cache.get(key)
        if found is not None:
            return found
        from botocore.config import Config as BotoConfig

        options: dict[str, Any] = {
            "retries": {"mode": "standard", "max_attempts": BOTOCORE_MAX_ATTEMPTS},
            "max_pool_connections": size,
            "connect_timeout": 10,
            "read_timeout": 60,
            "user_agent_extra": "batchdrop",
        }
        if service == "s3" and endpoint:
            # Emulators and S3-compatible stores rarely resolve bucket.host names.
            options["s3"] = {"addressing_style": "path"}
        made = _session().create_client(
            service, endpoint_url=endpoint, region_name=where, config=BotoConfig(**options)
        )
        _cache[key] = made
        return made


def _session() -> Any:
    """A new botocore session (a session is not safe to share across threads) that shares one
    loader of service models with the others: parsing a service's model is most of the cost of a
    client (a tenth of a second), and every set of credentials needs its own. Clients come from
    botocore itself: boto3 adds resources and transfer methods the runtime does not use, and two
    megabytes of imports (the multipart copy imports it when it needs it)."""
    global _loader
    import botocore.loaders
    import botocore.session

    if _loader is None:
        _loader = _loader_class(botocore.loaders.Loader)()
    session = botocore.session.Session()
    session.register_component("data_loader", _loader)
    return session


def _loader_class(base: type) -> type:
    class Loader(base):  # type: ignore[misc,valid-type]
        """botocore's loader, with the endpoint data cut to ``SERVICES`` (in its cache too)."""

        def load_data_with_path(self, name: str) -> tuple[Any, str]:
            data, path = super().load_data_with_path(name)
            if name == "endpoints":
                trim_endpoints(data)
            return data, path

    return Loader


def trim_endpoints(data: dict[str, Any], keep: frozenset[str] = SERVICES) -> dict[str, Any]:
    """Drop, in place, every service but ``keep`` from botocore's endpoint data (``endpoints``).

    A service missing from the data would resolve to its partition's default host name; that is
    why ``client()`` refuses a service that is not kept."""
    for partition in data.get("partitions", []):
        services = partition.get("services", {})
        for name in [n for n in services if n not in keep]:
            del services[name]
    return data


def clear_cache() -> None:
    """Forget the clients built so far (tests that switch endpoints or credentials)."""
    with _lock:
        _cache.clear()


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "RequestThrottled",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "InternalError",
    }
)


def is_transient(exc: BaseException) -> bool:
    """True for faults a retry may cure: throttling, 5xx, connection and read errors, a reply
    that fails its checksum."""
    from botocore.exceptions import (
        ChecksumError,
        HTTPClientError,
        ReadTimeoutError,
        ResponseStreamingError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    if isinstance(
        exc,
        BotoConnectionError
        | HTTPClientError
        | ReadTimeoutError
        | ResponseStreamingError
        | ChecksumError,  # a reply damaged on the way (DynamoDB's x-amz-crc32)
    ):
        return True
    code = error_code(exc)
    if code in THROTTLING_CODES:
        return True
    status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return isinstance(status, int) and status >= 500
