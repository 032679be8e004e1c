"""The error tree: every error the server answers with carries its HTTP status and Databricks `error_code`.

Routes never build error bodies by hand; they raise one of these and the app's exception handler renders
`{"error_code": ..., "message": ...}` (plus `Retry-After` where the class asks for it).
"""

from __future__ import annotations

from typing import Any


class ModelgateError(Exception):
    """Base of every error that reaches a client."""

    status: int = 500
    error_code: str = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message, **self.extra}

    def headers(self) -> dict[str, str]:
        if self.retry_after is not None:
            return {"Retry-After": str(max(1, int(self.retry_after)))}
        return {}


class BadRequest(ModelgateError):
    status = 400
    error_code = "BAD_REQUEST"


class InvalidParameterValue(BadRequest):
    error_code = "INVALID_PARAMETER_VALUE"


class ResourceAlreadyExists(BadRequest):
    error_code = "RESOURCE_ALREADY_EXISTS"


class Unauthenticated(ModelgateError):
    status = 401
    error_code = "UNAUTHENTICATED"


class PermissionDenied(ModelgateError):
    status = 403
    error_code = "PERMISSION_DENIED"


class ResourceDoesNotExist(ModelgateError):
    status = 404
    error_code = "RESOURCE_DOES_NOT_EXIST"


class EndpointNotFound(ModelgateError):
    """An unknown URL path (not an unknown serving endpoint, which is ResourceDoesNotExist)."""

    status = 404
    error_code = "ENDPOINT_NOT_FOUND"


class MethodNotAllowed(ModelgateError):
    status = 405
    error_code = "BAD_REQUEST"


class ResourceConflict(ModelgateError):
    status = 409
    error_code = "RESOURCE_CONFLICT"


class RequestTimeout(ModelgateError):
    """The client did not finish sending its request in time (the server's connection deadlines)."""

    status = 408
    error_code = "BAD_REQUEST"


class PayloadTooLarge(ModelgateError):
    status = 413
    error_code = "BAD_REQUEST"


class UnsupportedMediaType(ModelgateError):
    status = 415
    error_code = "BAD_REQUEST"


class RequestHeaderFieldsTooLarge(ModelgateError):
    """431: one header (Authorization) or the whole header block is past its limit.

    Databricks has no error_code of its own for this; like 413 and 415 it keeps BAD_REQUEST, a code every
    Databricks client knows, and lets the status say which bad request it was."""

    status = 431
    error_code = "BAD_REQUEST"


class RequestLimitExceeded(ModelgateError):
    status = 429
    error_code = "REQUEST_LIMIT_EXCEEDED"


class Cancelled(ModelgateError):
    status = 499
    error_code = "CANCELLED"


class InternalError(ModelgateError):
    status = 500
    error_code = "INTERNAL_ERROR"


class NotImplementedByServer(ModelgateError):
    status = 501
    error_code = "NOT_IMPLEMENTED"


class TemporarilyUnavailable(ModelgateError):
    status = 503
    error_code = "TEMPORARILY_UNAVAILABLE"


class DeadlineExceeded(ModelgateError):
    status = 504
    error_code = "DEADLINE_EXCEEDED"


class ExternalModelError(ModelgateError):
    """An external provider answered with an error; its message is kept in `external_model_message`.

    The status is the upstream's when it is a meaningful client-facing one (400, 401→ mapped to 400
    since the caller's own token was fine, 404, 429, 5xx), so clients' retry logic still works.
    """

    def __init__(
        self,
        provider: str,
        status: int,
        error_code: str,
        upstream_message: Any,
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(
            f"Received error from {provider}",
            retry_after=retry_after,
            extra={"external_model_message": upstream_message},
        )
        self.status = status
        self.error_code = error_code


_CODE_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_CONFLICT",
    413: "BAD_REQUEST",
    422: "BAD_REQUEST",
    429: "REQUEST_LIMIT_EXCEEDED",
    499: "CANCELLED",
    500: "INTERNAL_ERROR",
    501: "NOT_IMPLEMENTED",
    502: "TEMPORARILY_UNAVAILABLE",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_code_for_status(status: int) -> str:
    """The Databricks error_code that matches an HTTP status (reference §6.2)."""
    if status in _CODE_BY_STATUS:
        return _CODE_BY_STATUS[status]
    return "BAD_REQUEST" if 400 <= status < 500 else "INTERNAL_ERROR"
