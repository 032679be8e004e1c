"""Gemini's errors as ours, by Google's canonical `status` name rather than the HTTP code alone.

Vertex AI answers failures as `{"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED"}}`
(cloud.google.com/vertex-ai/generative-ai/docs/error-code-list), also as an SSE `data:` event in the middle of
a stream, which the shared SSE reader reports as a 502. The status name decides what the caller gets; the
provider's message always stays in `external_model_message`. A prompt Gemini's safety filters block comes back
as a 200 with `promptFeedback.blockReason` and no candidates; that becomes a 400 naming the filter.
"""

from __future__ import annotations

import re
from typing import Any

from modelgate.errors import ExternalModelError, error_code_for_status

PROVIDER = "google-cloud-vertex-ai"
# Canonical status → HTTP status for our caller. Credentials and permissions are the endpoint's
# misconfiguration, not the caller's, so they are 400s (like every provider's upstream 401/403).
_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 400,
    "PERMISSION_DENIED": 400,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_HINTS = {
    "UNAUTHENTICATED": "Vertex AI refused the endpoint's service account credentials; check its private_key.",
    "PERMISSION_DENIED": (
        "The endpoint's service account may not use this model; grant it the Vertex AI User role "
        "(roles/aiplatform.user) on the project, and check project_id and region."
    ),
    "RESOURCE_EXHAUSTED": "Vertex AI quota or rate limit reached; retry later or raise the project's quota.",
}
_CONTEXT_HINT = "The input is longer than the model's context window; shorten the messages or the prompt."
# "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576)."
_CONTEXT_OVERFLOW = re.compile(r"token count.*exceeds the maximum|exceeds the maximum number of tokens", re.I)


def gemini_error(exc: ExternalModelError) -> ExternalModelError:
    """Re-map an upstream error by its Google status name; others come back unchanged."""
    message = exc.extra.get("external_model_message")
    if not isinstance(message, dict) or message.get("status") not in _STATUS:
        return exc
    name = str(message["status"])
    status = _STATUS[name]
    retry = (exc.retry_after or 1) if status in (429, 503) else None
    mapped = ExternalModelError(PROVIDER, status, error_code_for_status(status), message, retry_after=retry)
    hint = _HINTS.get(name)
    if name == "INVALID_ARGUMENT" and _CONTEXT_OVERFLOW.search(str(message.get("message", ""))):
        hint = _CONTEXT_HINT
    if hint:
        mapped.message = f"{mapped.message}: {hint}"
        mapped.args = (mapped.message,)
    return mapped


def raise_if_blocked(resp: dict[str, Any]) -> None:
    """A prompt blocked by Gemini's filters: `promptFeedback.blockReason` (SAFETY, BLOCKLIST, PROHIBITED_CONTENT,
    ...) and no candidates. Example: {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [...]}}."""
    feedback = resp.get("promptFeedback")
    if not isinstance(feedback, dict) or not feedback.get("blockReason") or resp.get("candidates"):
        return
    reason = str(feedback["blockReason"])
    detail = {
        "message": f"The prompt was blocked by Gemini's content filter (blockReason {reason}).",
        "status": "CONTENT_FILTERED",
        "promptFeedback": feedback,
    }
    error = ExternalModelError(PROVIDER, 400, "BAD_REQUEST", detail)
    error.message = f"{error.message}: the prompt was blocked by the provider's content filter ({reason})."
    error.args = (error.message,)
    raise error
