"""Per-endpoint permission levels (CAN_VIEW < CAN_QUERY < CAN_MANAGE) and the check itself."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

from modelgate.auth.principal import Principal
from modelgate.errors import PermissionDenied, ResourceDoesNotExist

# Every user belongs to Databricks' built-in group `users`; an ACL entry for it grants everyone.
ALL_USERS_GROUP = "users"


class Level(IntEnum):
    NONE = 0
    CAN_VIEW = 1
    CAN_QUERY = 2
    CAN_MANAGE = 3


LEVEL_DESCRIPTIONS = {
    "CAN_MANAGE": "Can manage the endpoint: edit its config, permissions and delete it",
    "CAN_QUERY": "Can query the endpoint and view it",
    "CAN_VIEW": "Can view the endpoint's details",
}

AclKey = tuple[str, str]  # (principal kind: user | group | service_principal, name)


def effective_level(principal: Principal, acl: Mapping[AclKey, Level], creator: str | None) -> Level:
    if principal.is_admin:
        return Level.CAN_MANAGE
    if creator is not None and principal.kind == "user" and principal.name == creator:
        return Level.CAN_MANAGE
    level = acl.get((principal.kind, principal.name), Level.NONE)
    for group in (*principal.groups, ALL_USERS_GROUP):
        level = max(level, acl.get(("group", group), Level.NONE))
    return level


def require(
    principal: Principal,
    acl: Mapping[AclKey, Level],
    creator: str | None,
    needed: Level,
    endpoint_name: str,
) -> Level:
    level = effective_level(principal, acl, creator)
    if level == Level.NONE:
        # As on the control plane: an endpoint the caller may not even view is indistinguishable from none.
        raise ResourceDoesNotExist(f"Endpoint with name '{endpoint_name}' does not exist.")
    if level < needed:
        raise PermissionDenied(
            f"{principal.name} does not have {needed.name} permission on serving endpoint "
            f"'{endpoint_name}'. Ask a user with CAN_MANAGE on it to grant access."
        )
    return level
