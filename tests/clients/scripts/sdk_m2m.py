"""databricks-sdk with OAuth M2M (DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET in the environment).
Usage: sdk_m2m.py CHAT VIEW_ONLY_ENDPOINT. Prints one JSON line."""

import json
import sys

from databricks.sdk import WorkspaceClient, errors
from databricks.sdk.service.serving import ChatMessage, ChatMessageRole
from databricks.sdk.version import __version__

chat_ep, view_only_ep = sys.argv[1:3]
w = WorkspaceClient()
out = {"sdk_version": __version__, "auth_type": w.config.auth_type}
msg = [ChatMessage(role=ChatMessageRole.USER, content="hi from a service principal")]
out["query"] = w.serving_endpoints.query(chat_ep, messages=msg).choices[0].message.content
out["query_again"] = w.serving_endpoints.query(chat_ep, messages=msg).choices[0].message.content
out["listed"] = sorted(e.name for e in w.serving_endpoints.list())
try:
    w.serving_endpoints.query(view_only_ep, prompt="not allowed")
except errors.PermissionDenied as exc:
    out["permission_denied"] = {"type": type(exc).__name__, "error_code": exc.error_code}
print(json.dumps(out))
