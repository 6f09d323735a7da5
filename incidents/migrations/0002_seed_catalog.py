"""Seed the error-type catalog and the default classification rules.

Severities map logging levels: WARNING -> MEDIUM, ERROR -> HIGH, INFO -> INFO; the
generic per-category types take these defaults (API and rate limits MEDIUM, network and
database HIGH, validation and processing LOW, system CRITICAL).

Rules run in position order and the first match wins, so the order is part of the data:
specific exception classes before messages, DNS before connection errors (a DNS failure
surfaces as a ConnectionError whose message names the lookup), HTTP statuses before
generic HTTP errors, storage context before bare OS errors, and catch-alls last.
"""

from django.db import migrations

INFO, LOW, MEDIUM, HIGH, CRITICAL = 10, 20, 30, 40, 50

# code: (category, default severity, transient, action type, description, suggested action)
ERROR_TYPES = {
    "NETWORK_TIMEOUT": ("NETWORK", MEDIUM, True, "retry", "Network request timed out",
                        "The service is slow to answer. Check your connection and retry."),
    "NETWORK_CONNECTION": ("NETWORK", HIGH, True, "retry", "Failed to establish connection",
                           "Check your connection and retry."),
    "NETWORK_DNS": ("NETWORK", HIGH, True, "check_configuration", "DNS resolution failed",
                    "Check the host name and DNS settings, then retry."),
    "API_RATE_LIMIT": ("RATE_LIMIT", MEDIUM, True, "wait", "API rate limit exceeded",
                       "Too many requests: wait for the limit to reset (see Retry-After), then retry."),
    "API_AUTH": ("AUTH", HIGH, False, "reauthenticate", "Authentication failed",
                 "Sign in again or renew the API credentials."),
    "API_PERMISSION": ("AUTH", HIGH, False, "check_configuration", "Insufficient permissions",
                       "Check the account's or API key's permissions for this resource."),
    "API_FORMAT": ("API", HIGH, False, "contact_support", "API response format error",
                   "The service answered in an unexpected format; contact its support if it persists."),
    "API_BAD_REQUEST": ("API", HIGH, False, "fix_input", "The API rejected the request (400)",
                        "Check the request parameters; retrying the same request will not help."),
    "API_NOT_FOUND": ("API", MEDIUM, False, "fix_input", "Resource not found (404)",
                      "Check the identifier; the item may have been removed."),
    "API_SERVER_ERROR": ("API", MEDIUM, True, "retry", "The API failed with a server error (5xx)",
                         "The service is having trouble; retry shortly."),
    "API_ERROR": ("API", MEDIUM, False, "contact_support", "The API reported an error",
                  "Check the service's status; contact its support if it persists."),
    "DATA_EMPTY": ("DATA", INFO, False, "none", "Empty data returned (expected)",
                   "No data for this request; nothing to do unless it persists."),
    "DATA_VALIDATION": ("VALIDATION", MEDIUM, False, "fix_input", "Data validation failed",
                        "Correct the invalid values and try again."),
    "DATA_INTEGRITY": ("DATA", HIGH, False, "contact_support", "Data integrity check failed",
                       "Stored data is inconsistent; contact support."),
    "DATA_TRANSFORMATION": ("DATA", HIGH, False, "fix_input", "Data transformation failed",
                            "The data could not be parsed; check its format."),
    "DATA_SCHEMA": ("DATA", HIGH, False, "contact_support", "Data does not match the expected schema",
                    "The data's shape changed; contact support."),
    "DATA_DUPLICATE": ("DATA", LOW, False, "none", "Duplicate data",
                       "The item already exists; nothing to do."),
    "DATA_MISSING": ("DATA", MEDIUM, True, "wait", "Missing data",
                     "Some data is not available yet; it is filled in on a later run."),
    "STORAGE_READ": ("STORAGE", HIGH, False, "check_configuration", "Failed to read from storage",
                     "Check that the file exists and can be read."),
    "STORAGE_WRITE": ("STORAGE", HIGH, True, "retry", "Failed to write to storage",
                      "Retry; if it keeps failing, check the destination."),
    "STORAGE_SPACE": ("STORAGE", HIGH, False, "contact_support", "Insufficient storage space",
                      "Storage is full: free some space or contact support."),
    "STORAGE_PERMISSION": ("STORAGE", HIGH, False, "check_configuration", "Storage permission denied",
                           "Check the file or bucket permissions."),
    "DATABASE_ERROR": ("DATABASE", HIGH, True, "retry", "Database error",
                       "The database is unavailable or busy; retry shortly."),
    "WEBSOCKET_ERROR": ("WEBSOCKET", MEDIUM, True, "retry", "WebSocket connection failed",
                        "Live updates dropped; reconnecting, with polling meanwhile."),
    "CONFIGURATION_ERROR": ("CONFIGURATION", HIGH, False, "check_configuration", "Configuration error",
                            "A setting is missing or wrong; check the configuration."),
    "VALIDATION_ERROR": ("VALIDATION", LOW, False, "fix_input", "The request failed validation",
                         "Correct the highlighted fields and try again."),
    "PROCESSING_ERROR": ("PROCESSING", LOW, False, "contact_support", "Processing error",
                         "Something went wrong while processing; contact support if it persists."),
    "SYSTEM_ERROR": ("SYSTEM", CRITICAL, False, "contact_support", "System-level failure",
                     "The system is failing; contact support."),
    "INTERNAL": ("SYSTEM", HIGH, False, "contact_support", "Internal system error",
                 "An internal error occurred; contact support."),
    "UNEXPECTED": ("UNKNOWN", HIGH, False, "contact_support", "Unexpected error occurred",
                   "Something unexpected happened; contact support if it persists."),
}  # fmt: skip

# (name, error type, conditions); positions are 10, 20, ... in this order.
RULES = [
    ("Timeouts", "NETWORK_TIMEOUT", {
        "exception_type": "TimeoutError, socket.timeout, asyncio.TimeoutError, concurrent.futures.TimeoutError"}),
    ("Library timeouts", "NETWORK_TIMEOUT", {
        "exception_type": "requests.Timeout, ReadTimeout, ConnectTimeout, httpx.TimeoutException, "
                          "urllib3.TimeoutError, aiohttp.ServerTimeoutError"}),
    ("DNS failures", "NETWORK_DNS", {
        "exception_type": "socket.gaierror, socket.herror, urllib3.NameResolutionError, "
                          "aiohttp.ClientConnectorDNSError"}),
    ("DNS failure messages", "NETWORK_DNS", {
        "message_pattern": r"name or service not known|getaddrinfo|nodename nor servname|"
                           r"temporary failure in name resolution|could not resolve|failed to resolve"}),
    ("Timeout messages", "NETWORK_TIMEOUT", {"message_pattern": r"\btimed? ?out"}),
    ("WebSocket errors", "WEBSOCKET_ERROR", {
        "exception_type": "websockets.WebSocketException, ConnectionClosed, WebSocketException, "
                          "WebSocketError, WSServerHandshakeError"}),
    ("Connection errors", "NETWORK_CONNECTION", {
        "exception_type": "ConnectionError, httpx.NetworkError, urllib3.NewConnectionError, urllib3.MaxRetryError, "
                          "urllib3.ProtocolError, httpx.ProtocolError, aiohttp.ClientConnectionError, "
                          "NetworkException"}),
    ("Connection messages", "NETWORK_CONNECTION", {
        "message_pattern": r"connection (refused|reset|aborted)|network is unreachable|no route to host"}),
    ("Rate limited (429)", "API_RATE_LIMIT", {"http_status": "429"}),
    ("Rate limit exceptions", "API_RATE_LIMIT", {
        "exception_type": "RateLimitError, RateLimitException, RateLimitExceeded, Throttled, TooManyRequests"}),
    ("Unauthorized (401)", "API_AUTH", {"http_status": "401"}),
    ("Forbidden (403)", "API_PERMISSION", {"http_status": "403"}),
    ("Not found (404)", "API_NOT_FOUND", {"http_status": "404"}),
    ("Bad request (400)", "API_BAD_REQUEST", {"http_status": "400"}),
    ("Unprocessable request (422)", "VALIDATION_ERROR", {"http_status": "422"}),
    ("Server errors (5xx)", "API_SERVER_ERROR", {"http_status": "5xx"}),
    ("Authentication exceptions", "API_AUTH", {
        "exception_type": "AuthenticationFailed, NotAuthenticated, AuthenticationError, AuthenticationException"}),
    ("Permission denied", "API_PERMISSION", {"exception_type": "PermissionDenied"}),
    ("Empty data", "DATA_EMPTY", {"context_match": {"empty_reason": "*"}}),
    ("Schema exceptions", "DATA_SCHEMA", {"exception_type": "SchemaError, SchemaMismatchError, SchemaValidationError"}),
    ("Schema mismatch messages", "DATA_SCHEMA", {"message_pattern": r"schema mismatch|does not match (the )?schema"}),
    ("Data feed errors", "DATA_MISSING", {"exception_type": "DataFeedException, DataUnavailableError"}),
    ("Unreadable API responses", "API_FORMAT", {
        "exception_type": "requests.JSONDecodeError, aiohttp.ContentTypeError, httpx.DecodingError"}),
    ("Parse failures", "DATA_TRANSFORMATION", {
        "exception_type": "JSONDecodeError, ParserError, UnicodeDecodeError"}),
    ("Errors during validation", "DATA_VALIDATION", {
        "exception_type": "ValueError, TypeError, KeyError", "context_match": {"during_validation": "*"}}),
    ("Validation exceptions", "DATA_VALIDATION", {
        "exception_type": "ValidationError, ValidationException, DataValidationError"}),
    ("Unique violations", "DATA_DUPLICATE", {"exception_type": "UniqueViolation, DuplicateKeyError"}),
    ("Duplicate key messages", "DATA_DUPLICATE", {
        "exception_type": "IntegrityError",
        "message_pattern": r"duplicate key|unique constraint|duplicate entry"}),
    ("Integrity errors", "DATA_INTEGRITY", {"exception_type": "IntegrityError"}),
    ("Database errors", "DATABASE_ERROR", {
        "exception_type": "DatabaseError, OperationalError, InterfaceError, SQLAlchemyError, PoolTimeout"}),
    ("Disk full", "STORAGE_SPACE", {
        "message_pattern": r"no space left on device|\[errno 28\]|\bENOSPC\b|disk quota exceeded"}),
    ("Storage permission", "STORAGE_PERMISSION", {
        "exception_type": "PermissionError", "context_match": {"storage_operation": "*"}}),
    ("Storage reads", "STORAGE_READ", {"exception_type": "OSError", "context_match": {"storage_operation": "read"}}),
    ("Storage writes", "STORAGE_WRITE", {"exception_type": "OSError", "context_match": {"storage_operation": "write"}}),
    ("Publish failures", "STORAGE_WRITE", {"exception_type": "PublishError"}),
    ("File permission errors", "STORAGE_PERMISSION", {"exception_type": "PermissionError"}),
    ("Missing files", "STORAGE_READ", {"exception_type": "FileNotFoundError, IsADirectoryError, NotADirectoryError"}),
    ("Configuration errors", "CONFIGURATION_ERROR", {
        "exception_type": "ImproperlyConfigured, ConfigurationError, ConfigurationException, ConfigError"}),
    ("System failures", "SYSTEM_ERROR", {"exception_type": "MemoryError, SystemError, RecursionError"}),
    # Being stopped is not a crash: keep the type, lower the severity.
    ("Process stopped", "SYSTEM_ERROR", {
        "exception_type": "SystemExit, KeyboardInterrupt", "severity_override": MEDIUM}),
    ("Broken invariants", "INTERNAL", {"exception_type": "AssertionError, NotImplementedError"}),
    ("HTTP errors", "API_ERROR", {
        "exception_type": "requests.HTTPError, httpx.HTTPStatusError, aiohttp.ClientResponseError, "
                          "urllib.error.HTTPError, ExchangeAPIError, BrokerException"}),
    ("Processing errors", "PROCESSING_ERROR", {
        "exception_type": "StrategyException, RecoveryException, RuntimeError"}),
]  # fmt: skip


def seed(apps, schema_editor):
    ErrorType = apps.get_model("incidents", "ErrorType")
    ClassificationRule = apps.get_model("incidents", "ClassificationRule")
    types = {}
    for code, (category, severity, transient, action, description, suggestion) in ERROR_TYPES.items():
        types[code], _ = ErrorType.objects.update_or_create(
            code=code,
            defaults={
                "category": category,
                "default_severity": severity,
                "transient": transient,
                "action_type": action,
                "description": description,
                "suggested_action": suggestion,
            },
        )
    for position, (name, code, conditions) in enumerate(RULES, start=1):
        ClassificationRule.objects.update_or_create(
            name=name, defaults={"position": position * 10, "error_type": types[code], **conditions}
        )


def unseed(apps, schema_editor):
    apps.get_model("incidents", "ClassificationRule").objects.filter(name__in=[rule[0] for rule in RULES]).delete()
    apps.get_model("incidents", "ErrorType").objects.filter(code__in=ERROR_TYPES).delete()


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
