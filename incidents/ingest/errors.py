"""The one error ingest raises for bad input: an HTTP status, the field at fault and why."""


class IngestError(Exception):
    """Bad input from a client, answered with a 4xx that names the field and the limit."""

    def __init__(self, status: int, field: str, message: str, *, retry_after: int | None = None):
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message
        self.retry_after = retry_after

    def as_dict(self) -> dict:
        return {"error": self.message, "field": self.field}
