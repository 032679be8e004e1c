"""Secret scopes and their ACLs through databricks-sdk, as the owner of a new scope and as another user.

Usage: sdk_secrets.py SCOPE OTHER_USER OTHER_TOKEN. Prints what each call returned as JSON.
"""

import json
import sys

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound, PermissionDenied
from databricks.sdk.service.workspace import AclPermission

scope, other_user, other_token = sys.argv[1:4]
owner = WorkspaceClient()
other = WorkspaceClient(host=owner.config.host, token=other_token)
out: dict[str, object] = {}

owner.secrets.create_scope(scope)
owner.secrets.put_secret(scope, "key", string_value="value")
try:
    other.secrets.list_secrets(scope)
except PermissionDenied as exc:
    out["other_before"] = {"type": type(exc).__name__, "error_code": exc.error_code}
owner.secrets.put_acl(scope, other_user, AclPermission.READ)
out["other_keys"] = [s.key for s in other.secrets.list_secrets(scope)]
acl = owner.secrets.get_acl(scope, other_user)
out["get_acl"] = {"principal": acl.principal, "permission": acl.permission.value if acl.permission else None}
items = owner.secrets.list_acls(scope)
out["list_acls"] = sorted((a.principal, a.permission.value if a.permission else "") for a in items)
owner.secrets.delete_acl(scope, other_user)
try:
    owner.secrets.get_acl(scope, other_user)
except NotFound as exc:
    out["after_delete"] = {"type": type(exc).__name__, "error_code": exc.error_code}
owner.secrets.delete_scope(scope)
print(json.dumps(out))
