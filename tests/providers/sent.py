"""What a fake provider received: its recorded requests whose JSON body mentions a test's marker."""

from __future__ import annotations

import json
from typing import Any, Protocol

from tests.fakes.openai_upstream import RecordedRequest


class Recording(Protocol):
    @property
    def requests(self) -> list[Any]: ...


def sent_with(fake: Recording, marker: str, path_prefix: str = "") -> list[RecordedRequest]:
    """The requests (under `path_prefix`, when given) whose body contains `marker`, oldest first."""
    return [r for r in list(fake.requests) if r.path.startswith(path_prefix) and marker in json.dumps(r.json)]


def only_sent(fake: Recording, marker: str) -> Any:
    """The JSON body of the one request that mentions `marker`."""
    found = sent_with(fake, marker)
    assert len(found) == 1, found
    return found[0].json
