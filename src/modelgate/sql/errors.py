"""Errors `ai_query` raises: bad calls (found before any row runs) and endpoint failures (per row)."""

from __future__ import annotations


class AiQueryError(Exception):
    """A call of ai_query that cannot run: unknown endpoint, bad returnType, wrong request type, bad option."""


class EndpointCallError(AiQueryError):
    """A row's request failed at the endpoint (after retries), or its answer did not fit the returnType."""

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
