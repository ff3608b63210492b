"""The query API on AWS Lambda behind API Gateway, through the Mangum ASGI adapter.

The app is built on the first invocation from the bundled config (``$BATCHDROP_CONFIG``, else
``batchdrop.yaml`` in the function's directory, with ``BATCHDROP_*`` overrides) and kept for
the life of the execution environment. ``BATCHDROP_API_BASE_PATH`` strips a custom-domain base
path or a stage name from the request path.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from ..config import load_config

_lock = threading.Lock()
_adapter: Any = None


def _config_path() -> Path:
    explicit = os.environ.get("BATCHDROP_CONFIG")
    if explicit:
        return Path(explicit)
    root = os.environ.get("LAMBDA_TASK_ROOT")
    return Path(root, "batchdrop.yaml") if root else Path("batchdrop.yaml")


def build() -> Any:
    """A Mangum adapter around the app for the bundled config."""
    from mangum import Mangum

    from ..aws.secrets import take_parameter_name
    from .feeds import create_api

    env = dict(os.environ)
    take_parameter_name(env)  # where the loader's webhooks are kept: the API notifies no one
    app = create_api(load_config(_config_path(), environ=env))
    return Mangum(
        app, lifespan="off", api_gateway_base_path=os.environ.get("BATCHDROP_API_BASE_PATH", "/")
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _adapter
    if _adapter is None:
        with _lock:
            if _adapter is None:
                _adapter = build()
    return _adapter(event, context)  # type: ignore[no-any-return]


def reset() -> None:
    """Forget the app, so the next invocation reads the config again (tests)."""
    global _adapter
    _adapter = None
