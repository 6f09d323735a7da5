"""OpenAPI: the token scheme, and the one error shape documented on every operation."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "field": {"type": "string", "nullable": True},
        "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "retry_after": {"type": "integer"},
    },
    "required": ["error"],
}
ERROR_STATUSES = {
    "400": "Bad input: `field` names the parameter or body field at fault.",
    "401": "No credentials, or an unknown or revoked token.",
    "403": "The token's role does not allow this.",
    "404": "No such object, or one outside your reach.",
    "405": "Method not allowed.",
    "409": "The change does not apply in the object's current state.",
    "413": "Body too large.",
    "415": "Unsupported media type: send JSON.",
    "429": "Throttled: retry after `Retry-After` seconds.",
}


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "access.authentication.TokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API token: `Authorization: Bearer ict_...`"}


def add_error_responses(result, generator, request, public):
    """Postprocessing hook: every operation may answer the error shape with any error status."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_STATUSES.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
    return result
