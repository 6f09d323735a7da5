"""The one error ingest raises for bad input: an HTTP status, the field at fault and why."""


class IngestError(Exception):
    """Bad input from a client, answered with a 4xx that names the field and the limit."""

    def __init__(self, status: int, field: str, message: str, *, retry_after: int | None = None):
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message
        # Only rate limiting (429) sets it; the view turns it into Retry-After.
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"IngestError({self.status}, {self.field!r}, {self.message!r})"

    def as_dict(self) -> dict:
        """Return the JSON body of the error response."""
        return {"error": self.message, "field": self.field}
