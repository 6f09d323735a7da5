"""Keep credentials out of every log line, whichever server or library writes it.

Servers log request targets with their query strings (granian's access log, when it is turned on
with a format that includes the query string: `GET /ws/live/?token=ict_...`), and Sentry SDKs may
put the ingest key in the URL (`?sentry_key=...`). The filter rewrites such values in each record before any
handler formats it.
"""

import logging
import logging.config
import re

# A query parameter that carries a credential, up to the next separator; it may also start a query
# string logged on its own (an access-log format of `%(query_string)s` has no `?`).
_SECRET_PARAMETER = re.compile(
    r"(?i)((?:^|[?&;\s\"'(\[])(?:token|access_token|api_key|apikey|key|sentry_key|sentry_secret)=)[^&;#\s\"'\]]+"
)
# An API token wherever it appears (a header echoed into a message, say).
_API_TOKEN = re.compile(r"\bict_[A-Za-z0-9_\-]{8,}")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """Return `text` with credentials in query strings and API tokens replaced."""
    return _API_TOKEN.sub("ict_" + REDACTED, _SECRET_PARAMETER.sub(r"\1" + REDACTED, text))


class RedactTokens(logging.Filter):
    """Replace credentials in a record's message and arguments; never drop a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the formatter's to report, as it would be without us
            return True
        if redact(message) == message:
            return True
        # Arguments keep their shape: an access formatter may unpack them.
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: redact(arg) if isinstance(arg, str) else arg for key, arg in record.args.items()}
        if redact(record.getMessage()) != record.getMessage():  # a secret inside a non-string argument
            record.msg, record.args = redact(message), None
        return True


class QuietRefusals(logging.Filter):
    """Log a refused request (403) as its one line, without the traceback Django attaches.

    Django logs every PermissionDenied with its exc_info: each page a viewer may not open, or a
    probe of admin, would print forty lines of stack that say nothing about a fault.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from django.core.exceptions import PermissionDenied

        if record.exc_info and isinstance(record.exc_info[1], PermissionDenied):
            record.exc_info = None
            record.exc_text = None
        return True


# Loggers whose handlers the servers set up before Django loads (uvicorn, granian, daphne):
# filtering handlers, not loggers, also covers records that propagate from child loggers.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "granian", "granian.access", "daphne", "django")


def configure(config: dict) -> None:
    """Apply Django's LOGGING, then put the redacting filter on every handler already installed."""
    logging.config.dictConfig(config)
    redacting = RedactTokens()
    loggers = [logging.root, *map(logging.getLogger, SERVER_LOGGERS), *logging.root.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):  # placeholders of unused parents have none
            if not any(isinstance(existing, RedactTokens) for existing in handler.filters):
                handler.addFilter(redacting)
