"""The openai package against modelgate: chat (plain, multi-turn, tools, stream), completions, embeddings,
responses, and a typed error. Usage: openai_client.py CHAT COMPLETIONS EMBEDDINGS. Prints one JSON line."""

import json
import os
import sys

import openai
from openai import OpenAI

chat_ep, completions_ep, embeddings_ep = sys.argv[1:4]
client = OpenAI(api_key=os.environ["DATABRICKS_TOKEN"], base_url=os.environ["DATABRICKS_HOST"] + "/serving-endpoints")
out = {"openai_version": openai.__version__}

plain = client.chat.completions.create(
    model=chat_ep,
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is MLflow?"}],
    max_tokens=64,
)
out["plain"] = {
    "content": plain.choices[0].message.content,
    "finish_reason": plain.choices[0].finish_reason,
    "usage": [plain.usage.prompt_tokens, plain.usage.completion_tokens, plain.usage.total_tokens],
}

multi = client.chat.completions.create(
    model=chat_ep,
    messages=[
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "What is my name?"},
    ],
)
out["multi_turn"] = multi.choices[0].message.content

tools = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
tool_resp = client.chat.completions.create(
    model=chat_ep, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=tools
)
call = tool_resp.choices[0].message.tool_calls[0]
out["tool_call"] = {
    "finish_reason": tool_resp.choices[0].finish_reason,
    "name": call.function.name,
    "arguments": json.loads(call.function.arguments),
}
followup = client.chat.completions.create(
    model=chat_ep,
    messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ],
    tools=tools,
)
out["tool_followup"] = followup.choices[0].message.content

pieces, usage_chunks, chunk_count = [], [], 0
for chunk in client.chat.completions.create(
    model=chat_ep, messages=[{"role": "user", "content": "stream this please"}], stream=True
):
    chunk_count += 1
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.usage is not None:
        usage_chunks.append({"choices": len(chunk.choices), "total": chunk.usage.total_tokens})
out["stream"] = {"text": "".join(pieces), "usage_chunks": usage_chunks, "chunks": chunk_count}

comp = client.completions.create(model=completions_ep, prompt="Once upon a time", max_tokens=16)
out["completion"] = comp.choices[0].text

emb_default = client.embeddings.create(model=embeddings_ep, input=["hello", "world"])
emb_float = client.embeddings.create(model=embeddings_ep, input="hello", encoding_format="float")
out["embeddings"] = {
    "default": [d.embedding for d in emb_default.data],
    "float": emb_float.data[0].embedding,
}

resp = client.responses.create(model=chat_ep, input="Tell me about responses", instructions="Be brief.")
streamed = []
for event in client.responses.create(model=chat_ep, input="stream a response", stream=True):
    streamed.append(event.type)
    if event.type == "response.completed":
        final_text = event.response.output_text
out["responses"] = {
    "text": resp.output_text,
    "status": resp.status,
    "input_tokens": resp.usage.input_tokens,
    "stream_types": streamed,
    "stream_text": final_text,
}

try:
    client.chat.completions.create(model="no-such-endpoint-xyz", messages=[{"role": "user", "content": "hi"}])
except openai.NotFoundError as exc:
    out["not_found"] = {"status": exc.status_code, "body": exc.body}

print(json.dumps(out))
