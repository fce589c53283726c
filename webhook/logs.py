"""Structured JSON logs (structlog): one JSON object per line on stdout."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_configured = False


def configure_logging(level: str = "info") -> None:
    global _configured
    if _configured:
        return
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=getattr(logging, level.upper(), logging.INFO))
    for noisy in ("httpx", "httpcore"):  # one line per registry request is noise, not audit
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=_SafePrintLogger,
        cache_logger_on_first_use=True,
    )
    _configured = True


class _SafePrintLogger(structlog.PrintLogger):
    """Operational logs are best effort: a full disk or a closed pipe on stdout must never turn
    an admission answer into an error (the audit trail is where durability is required)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(file=sys.stdout)

    def msg(self, message: str) -> None:
        try:
            super().msg(message)
        except (OSError, ValueError):
            pass

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("modelsign").bind(**context)
