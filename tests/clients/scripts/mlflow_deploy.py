"""mlflow.deployments get_deploy_client("databricks") against modelgate: predict / predict_stream for chat,
completions and embeddings, and the endpoint lifecycle.
Usage: mlflow_deploy.py CHAT COMPLETIONS EMBEDDINGS UPSTREAM_BASE NEW_ENDPOINT_NAME. Prints one JSON line."""

import json
import sys

import mlflow
from mlflow.deployments import get_deploy_client

chat_ep, completions_ep, embeddings_ep, upstream, new_name = sys.argv[1:6]
client = get_deploy_client("databricks")
out = {"mlflow_version": mlflow.__version__}

chat = client.predict(
    endpoint=chat_ep, inputs={"messages": [{"role": "user", "content": "hi mlflow"}], "max_tokens": 16}
)
out["predict_chat"] = chat["choices"][0]["message"]["content"]
comp = client.predict(endpoint=completions_ep, inputs={"prompt": "Once upon", "max_tokens": 8})
out["predict_completions"] = comp["choices"][0]["text"]
emb = client.predict(endpoint=embeddings_ep, inputs={"input": ["a", "b", "c"]})
out["predict_embeddings"] = [len(d["embedding"]) for d in emb["data"]]

chunks = list(client.predict_stream(endpoint=chat_ep, inputs={"messages": [{"role": "user", "content": "stream it"}]}))
out["stream_chat"] = {
    "text": "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"]),
    "usage_chunks": [c["usage"]["total_tokens"] for c in chunks if "usage" in c],
}
chunks = list(client.predict_stream(endpoint=completions_ep, inputs={"prompt": "stream a completion"}))
out["stream_completions"] = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])

out["list_has_chat"] = chat_ep in [e["name"] for e in client.list_endpoints()]
out["get"] = client.get_endpoint(endpoint=chat_ep)["state"]


def entity(model):
    return {
        "name": "main",
        "external_model": {
            "name": model,
            "provider": "openai",
            "task": "llm/v1/chat",
            "openai_config": {"openai_api_base": upstream, "openai_api_key_plaintext": "sk-upstream-test"},
        },
    }


created = client.create_endpoint(config={"name": new_name, "config": {"served_entities": [entity("gpt-4o-mini")]}})
out["created"] = created["name"]
updated = client.update_endpoint_config(endpoint=new_name, config={"served_entities": [entity("gpt-4o")]})
out["updated_model"] = updated["config"]["served_entities"][0]["external_model"]["name"]
out["delete"] = client.delete_endpoint(endpoint=new_name)
out["list_after_delete_has_new"] = new_name in [e["name"] for e in client.list_endpoints()]
print(json.dumps(out))
