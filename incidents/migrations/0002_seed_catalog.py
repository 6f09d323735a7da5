"""Seed the error-type catalog and the default classification rules from the seed documents.

Severities map the seeds' levels: WARNING -> MEDIUM, ERROR -> HIGH, INFO -> INFO; system
failures are CRITICAL. Rules reproduce the seeds' classify_exception and HTTP tables.
"""

from django.db import migrations

INFO, LOW, MEDIUM, HIGH, CRITICAL = 10, 20, 30, 40, 50

# code: (category, severity, transient, action type, description, suggested action)
ERROR_TYPES = {
    "NETWORK_TIMEOUT": ("NETWORK", MEDIUM, True, "retry", "Network request timed out",
                        "The service is slow to answer; retry in a moment."),
    "NETWORK_CONNECTION": ("NETWORK", HIGH, True, "retry", "Failed to establish connection",
                           "Check your connection and retry."),
    "NETWORK_DNS": ("NETWORK", HIGH, True, "check_configuration", "DNS resolution failed",
                    "Check the host name and DNS settings, then retry."),
    "API_RATE_LIMIT": ("RATE_LIMIT", MEDIUM, True, "wait", "API rate limit exceeded",
                       "Too many requests; wait for the limit to reset before retrying."),
    "API_AUTH": ("AUTH", HIGH, False, "reauthenticate", "Authentication failed",
                 "Sign in again or renew the API credentials."),
    "API_PERMISSION": ("AUTH", HIGH, False, "check_configuration", "Insufficient permissions",
                       "Check the API key's permissions."),
    "API_FORMAT": ("API", HIGH, False, "contact_support", "API response format error",
                   "The service answered in an unexpected format; report it."),
    "API_BAD_REQUEST": ("API", MEDIUM, False, "fix_input", "The API rejected the request (400)",
                        "Check the request parameters; retrying will not help."),
    "API_NOT_FOUND": ("API", LOW, False, "fix_input", "Resource not found (404)",
                      "The item does not exist; skip it or check the identifier."),
    "API_SERVER_ERROR": ("API", HIGH, True, "retry", "The API failed with a server error (5xx)",
                         "The service is having trouble; retry shortly."),
    "DATA_EMPTY": ("DATA", INFO, False, "none", "Empty data returned (expected)",
                   "No data for this range; nothing to do unless it persists."),
    "DATA_VALIDATION": ("VALIDATION", MEDIUM, False, "fix_input", "Data validation failed",
                        "Correct the invalid values and submit again."),
    "DATA_INTEGRITY": ("DATA", HIGH, False, "contact_support", "Data integrity check failed",
                       "Stored data is inconsistent; report it."),
    "DATA_TRANSFORMATION": ("DATA", HIGH, False, "contact_support", "Data transformation failed",
                            "The data could not be parsed; report it."),
    "DATA_SCHEMA": ("DATA", HIGH, False, "contact_support", "Data does not match the expected schema",
                    "The data's shape changed; report it."),
    "DATA_DUPLICATE": ("DATA", LOW, False, "none", "Duplicate data",
                       "Duplicates were removed; nothing to do."),
    "DATA_MISSING": ("DATA", MEDIUM, False, "none", "Missing data",
                     "Some data is missing; it will be filled in when available."),
    "STORAGE_READ": ("STORAGE", HIGH, True, "retry", "Failed to read from storage",
                     "Storage could not be read; retry shortly."),
    "STORAGE_WRITE": ("STORAGE", HIGH, True, "retry", "Failed to write to storage",
                      "Storage could not be written; retry shortly."),
    "STORAGE_SPACE": ("STORAGE", HIGH, False, "contact_support", "Insufficient storage space",
                      "Storage is full; free space or contact support."),
    "STORAGE_PERMISSION": ("STORAGE", HIGH, False, "check_configuration", "Storage permission denied",
                           "Check file and bucket permissions."),
    "DATABASE_ERROR": ("DATABASE", HIGH, True, "retry", "Database error",
                       "The database is unavailable; retry shortly."),
    "WEBSOCKET_ERROR": ("WEBSOCKET", MEDIUM, True, "retry", "WebSocket connection failed",
                        "Live updates dropped; reconnecting (polling meanwhile)."),
    "CONFIGURATION_ERROR": ("CONFIGURATION", HIGH, False, "check_configuration", "Configuration error",
                            "A setting is missing or wrong; check the configuration."),
    "PROCESSING_ERROR": ("PROCESSING", LOW, False, "contact_support", "Processing error",
                         "Something went wrong while processing; report it if it persists."),
    "SYSTEM_ERROR": ("SYSTEM", CRITICAL, False, "contact_support", "System-level failure",
                     "The system is failing; contact support."),
    "UNEXPECTED": ("UNKNOWN", HIGH, False, "contact_support", "Unexpected error occurred",
                   "Something unexpected happened; report it if it persists."),
    "INTERNAL": ("SYSTEM", HIGH, False, "contact_support", "Internal system error",
                 "An internal error occurred; contact support."),
}  # fmt: skip

_TIMEOUTS = "TimeoutError,socket.timeout,Timeout,ReadTimeout,ConnectTimeout,TimeoutException,asyncio.TimeoutError"
_CONNECTION = (
    "ConnectionError,ConnectError,NewConnectionError,MaxRetryError,ClientConnectorError,NetworkException,"
    "ConnectionRefusedError,ConnectionResetError,ConnectionAbortedError,BrokenPipeError"
)

# (name, error type, conditions)
RULES = [
    ("DNS failures", "NETWORK_DNS", {"exception_type": "gaierror,NameResolutionError"}),
    ("DNS failure messages", "NETWORK_DNS", {
        "message_pattern": r"name or service not known|getaddrinfo|nodename nor servname|"
                           r"temporary failure in name resolution|could not resolve"}),
    ("Timeouts", "NETWORK_TIMEOUT", {"exception_type": _TIMEOUTS}),
    ("Timeout messages", "NETWORK_TIMEOUT", {"message_pattern": r"timed? ?out"}),
    ("Rate limited (429)", "API_RATE_LIMIT", {"http_status": "429"}),
    ("Rate limit exceptions", "API_RATE_LIMIT", {"exception_type": "RateLimitError,RateLimitException"}),
    ("Unauthorized (401)", "API_AUTH", {"http_status": "401"}),
    ("Forbidden (403)", "API_PERMISSION", {"http_status": "403"}),
    ("Not found (404)", "API_NOT_FOUND", {"http_status": "404"}),
    ("Bad request (400)", "API_BAD_REQUEST", {"http_status": "400"}),
    ("Server errors (5xx)", "API_SERVER_ERROR", {"http_status": "5xx"}),
    ("Connection errors", "NETWORK_CONNECTION", {"exception_type": _CONNECTION}),
    ("Connection messages", "NETWORK_CONNECTION", {"message_pattern": r"connection (refused|reset|aborted)"}),
    ("Parse failures", "DATA_TRANSFORMATION", {"exception_type": "JSONDecodeError,ParserError"}),
    ("Errors during validation", "DATA_VALIDATION", {
        "exception_type": "ValueError,TypeError,KeyError", "context_match": {"during_validation": "*"}}),
    ("Validation exceptions", "DATA_VALIDATION", {
        "exception_type": "ValidationError,ValidationException,DataValidationError"}),
    ("Disk full", "STORAGE_SPACE", {"message_pattern": r"no space left on device|ENOSPC|disk quota exceeded"}),
    ("Storage permission", "STORAGE_PERMISSION", {
        "exception_type": "PermissionError", "context_match": {"storage_operation": "*"}}),
    ("Storage reads", "STORAGE_READ", {"exception_type": "OSError", "context_match": {"storage_operation": "read"}}),
    ("Storage writes", "STORAGE_WRITE", {"exception_type": "OSError", "context_match": {"storage_operation": "write"}}),
    ("Permission errors", "API_PERMISSION", {"exception_type": "PermissionError,PermissionDenied"}),
    ("Integrity errors", "DATA_INTEGRITY", {"exception_type": "IntegrityError"}),
    ("Database errors", "DATABASE_ERROR", {
        "exception_type": "DatabaseError,OperationalError,InterfaceError,SQLAlchemyError"}),
    ("WebSocket errors", "WEBSOCKET_ERROR", {"exception_type": "ConnectionClosed,WebSocketException,InvalidHandshake"}),
    ("Configuration errors", "CONFIGURATION_ERROR", {
        "exception_type": "ImproperlyConfigured,ConfigurationError,ConfigurationException"}),
    ("Empty data", "DATA_EMPTY", {"context_match": {"empty_reason": "*"}}),
    ("Broker and data feed errors", "API_FORMAT", {"exception_type": "BrokerException,DataFeedException"}),
    ("Strategy and recovery errors", "PROCESSING_ERROR", {
        "exception_type": "StrategyException,RecoveryException,PublishError"}),
    ("System failures", "SYSTEM_ERROR", {"exception_type": "MemoryError,SystemError,RecursionError"}),
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
    apps.get_model("incidents", "ClassificationRule").objects.filter(name__in=[r[0] for r in RULES]).delete()
    apps.get_model("incidents", "ErrorType").objects.filter(code__in=ERROR_TYPES).delete()


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
