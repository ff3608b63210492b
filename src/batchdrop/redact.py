"""What of a URL may be shown: a webhook URL is itself a credential (its path or query is the
secret), so logs, errors and receipts show its scheme and host only."""

from __future__ import annotations

from urllib.parse import urlsplit

REDACTED = "[redacted]"


def redact_url(url: str) -> str:
    """``url`` without what may be secret: user info, path, query and fragment.

    ``https://user:pw@hooks.example.com/services/T0/B0/XYZ?token=1`` →
    ``https://hooks.example.com/[redacted]``.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not even a URL: none of it can be shown
        return REDACTED
    if not parts.scheme or not host:
        return REDACTED
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    hidden = bool(parts.username or parts.password or parts.query or parts.fragment)
    hidden = hidden or parts.path not in ("", "/")
    return f"{parts.scheme}://{host}{port}/{REDACTED if hidden else ''}"
