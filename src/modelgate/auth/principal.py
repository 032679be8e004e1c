"""The caller of a request, as the rest of the server sees it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "user" | "service_principal"
    name: str  # user name, or a service principal's application id
    is_admin: bool = False
    groups: frozenset[str] = field(default_factory=frozenset)
    principal_id: int | None = None

    @property
    def display(self) -> str:
        return self.name
