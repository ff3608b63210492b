"""The one place that builds boto3 clients.

Every AWS call batchdrop makes goes through ``client()``, so the endpoint (``aws.endpoint_url`` in
the config, else ``AWS_ENDPOINT_URL_<SERVICE>`` / ``AWS_ENDPOINT_URL``), the region (``aws.region``,
else the usual boto3 chain), retries and the connection pool are decided once. boto3 is imported
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
    """A thread-safe boto3 client for ``service``, shared by every caller with the same settings.

    ``pool`` is the number of HTTP connections to keep; it should cover the requests a caller
    keeps in flight at once (``aws.max_workers``), plus some for the other threads.
    """
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
        made = _session().client(
            service, endpoint_url=endpoint, region_name=where, config=BotoConfig(**options)
        )
        _cache[key] = made
        return made


def _session() -> Any:
    """A new boto3 session (boto3's default session is not safe to share across threads) that
    shares one loader of service models with the others: parsing a service's model is most of
    the cost of a client (a tenth of a second), and every set of credentials needs its own."""
    global _loader
    import boto3
    import botocore.loaders
    import botocore.session

    if _loader is None:
        _loader = botocore.loaders.create_loader()
    core = botocore.session.Session()
    core.register_component("data_loader", _loader)
    session = boto3.session.Session(botocore_session=core)
    # boto3 adds its data folder to the loader's search path once per session
    _loader.search_paths[:] = list(dict.fromkeys(_loader.search_paths))
    return session


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
    """True for faults a retry may cure: throttling, 5xx, connection and read errors."""
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )
    from botocore.exceptions import (
        HTTPClientError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    if isinstance(
        exc, BotoConnectionError | HTTPClientError | ReadTimeoutError | ResponseStreamingError
    ):
        return True
    code = error_code(exc)
    if code in THROTTLING_CODES:
        return True
    status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return isinstance(status, int) and status >= 500
