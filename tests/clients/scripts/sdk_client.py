"""databricks-sdk against modelgate: query (messages, prompt, input), get_open_ai_client(), the endpoint
lifecycle with waiters, and typed errors. Auth comes from the environment (PAT or OAuth M2M).
Usage: sdk_client.py CHAT COMPLETIONS EMBEDDINGS [UPSTREAM_BASE NEW_ENDPOINT_NAME]. Prints one JSON line."""

import json
import sys
import warnings
from datetime import timedelta

from databricks.sdk import WorkspaceClient, errors
from databricks.sdk.service.serving import (
    ChatMessage,
    ChatMessageRole,
    EndpointCoreConfigInput,
    ExternalModel,
    ExternalModelProvider,
    OpenAiConfig,
    ServedEntityInput,
)
from databricks.sdk.version import __version__

chat_ep, completions_ep, embeddings_ep = sys.argv[1:4]
w = WorkspaceClient()
out = {"sdk_version": __version__, "auth_type": w.config.auth_type}

chat = w.serving_endpoints.query(
    chat_ep, messages=[ChatMessage(role=ChatMessageRole.USER, content="hi sdk")], max_tokens=16, temperature=0.1
)
out["query_messages"] = {
    "content": chat.choices[0].message.content,
    "role": chat.choices[0].message.role.value,
    "object": chat.object.value if chat.object else None,
    "served_model_name": chat.served_model_name,
    "total_tokens": chat.usage.total_tokens,
}
comp = w.serving_endpoints.query(completions_ep, prompt="Once upon", max_tokens=8)
out["query_prompt"] = comp.choices[0].text
emb = w.serving_endpoints.query(embeddings_ep, input=["a", "b"])
out["query_input"] = {"count": len(emb.data), "dims": len(emb.data[0].embedding), "object": emb.object.value}

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    oai = w.serving_endpoints.get_open_ai_client()
r = oai.chat.completions.create(model=chat_ep, messages=[{"role": "user", "content": "via get_open_ai_client"}])
out["open_ai_client"] = r.choices[0].message.content

out["list_has_chat"] = chat_ep in [e.name for e in w.serving_endpoints.list()]
got = w.serving_endpoints.get(chat_ep)
out["get"] = {"name": got.name, "ready": got.state.ready.value, "config_update": got.state.config_update.value}

try:
    w.serving_endpoints.get("no-such-endpoint-sdk")
except errors.ResourceDoesNotExist as exc:
    out["resource_does_not_exist"] = {"type": type(exc).__name__, "error_code": exc.error_code}
try:
    w.serving_endpoints.query(chat_ep, prompt="a prompt sent to a chat endpoint")
except errors.BadRequest as exc:
    out["bad_request"] = {"type": type(exc).__name__, "error_code": exc.error_code}

if len(sys.argv) > 5:
    upstream, new_name = sys.argv[4], sys.argv[5]

    def entity(model):
        return ServedEntityInput(
            name="main",
            external_model=ExternalModel(
                name=model,
                provider=ExternalModelProvider.OPENAI,
                task="llm/v1/chat",
                openai_config=OpenAiConfig(openai_api_base=upstream, openai_api_key_plaintext="sk-upstream-test"),
            ),
        )

    created = w.serving_endpoints.create_and_wait(
        new_name,
        config=EndpointCoreConfigInput(name=new_name, served_entities=[entity("gpt-4o-mini")]),
        timeout=timedelta(seconds=60),
    )
    out["create_and_wait"] = {"name": created.name, "config_update": created.state.config_update.value}
    q = w.serving_endpoints.query(new_name, messages=[ChatMessage(role=ChatMessageRole.USER, content="new")])
    out["query_new"] = q.choices[0].message.content
    updated = w.serving_endpoints.update_config_and_wait(
        new_name, served_entities=[entity("gpt-4o")], timeout=timedelta(seconds=60)
    )
    out["update_config_and_wait"] = {
        "config_update": updated.state.config_update.value,
        "model": updated.config.served_entities[0].external_model.name,
    }
    w.serving_endpoints.delete(new_name)
    try:
        w.serving_endpoints.get(new_name)
        out["deleted"] = False
    except errors.NotFound:
        out["deleted"] = True

print(json.dumps(out))
