"""Credentials out of logs: URLs with a ``user:KEY@`` part or a query string are masked before any HTTP
library's log record is formatted."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``url`` without credentials: a ``user:password@`` part and the query string are masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


class _RedactURLs(logging.Filter):
    """Masks credentials in the URLs that HTTP libraries log (httpx logs every request's full URL at INFO,
    so a key pasted into ``user:KEY@host`` or ``?api_key=KEY`` would otherwise reach the log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted_if_url(a) for a in record.args)
        return True


def _redacted_if_url(value: Any) -> Any:
    if isinstance(value, bytes | int | float):
        return value
    text = str(value)
    if text.startswith(("http://", "https://")):
        parts = urlsplit(text)
        if "@" in parts.netloc or parts.query:
            return redact_url(text)
    return value


_HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "openai._base_client")
_URL_FILTER = _RedactURLs()


def install_url_filter() -> None:
    """Add the credential mask to the loggers of httpx, httpcore and openai (idempotent)."""
    for name in _HTTP_LOGGERS:
        log = logging.getLogger(name)
        if _URL_FILTER not in log.filters:
            log.addFilter(_URL_FILTER)
