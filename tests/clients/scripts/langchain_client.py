"""databricks-langchain against modelgate: ChatDatabricks (invoke, stream, bind_tools, usage counted once,
use_responses_api) and DatabricksEmbeddings.
Usage: langchain_client.py CHAT COMPLETIONS EMBEDDINGS. Prints one JSON line."""

import json
import sys
import warnings

warnings.simplefilter("ignore")

from databricks_langchain import ChatDatabricks, DatabricksEmbeddings  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

chat_ep, _completions_ep, embeddings_ep = sys.argv[1:4]
out = {}

llm = ChatDatabricks(endpoint=chat_ep, max_tokens=64)
msg = llm.invoke("hi langchain")
out["invoke"] = {"content": msg.content, "usage": msg.usage_metadata}

total = None
pieces = []
for chunk in llm.stream("stream from langchain"):
    pieces.append(chunk.content)
    total = chunk if total is None else total + chunk
out["stream"] = {"text": "".join(pieces), "usage": total.usage_metadata}


class GetWeather(BaseModel):
    """Get the weather in a city."""

    city: str = Field(description="the city")


tool_msg = llm.bind_tools([GetWeather]).invoke("What is the weather in Paris?")
out["tool_calls"] = [{"name": c["name"], "args": c["args"]} for c in tool_msg.tool_calls]

tool_stream = None
for chunk in llm.bind_tools([GetWeather]).stream("What is the weather in Paris?"):
    tool_stream = chunk if tool_stream is None else tool_stream + chunk
out["tool_calls_streamed"] = [{"name": c["name"], "args": c["args"]} for c in tool_stream.tool_calls]

responses_llm = ChatDatabricks(endpoint=chat_ep, use_responses_api=True)
r = responses_llm.invoke("hi responses")
out["responses_invoke"] = r.text if isinstance(r.content, list) else r.content
rs = None
for chunk in responses_llm.stream("stream responses"):
    rs = chunk if rs is None else rs + chunk
out["responses_stream"] = rs.text if isinstance(rs.content, list) else rs.content

emb = DatabricksEmbeddings(endpoint=embeddings_ep)
out["embed_query"] = len(emb.embed_query("hello"))
docs = emb.embed_documents([f"doc {i}" for i in range(25)])
out["embed_documents"] = [len(docs), len(docs[0])]
print(json.dumps(out, default=str))
