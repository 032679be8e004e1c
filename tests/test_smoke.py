from __future__ import annotations

import openai

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config


def test_chat_through_openai_client(any_server: LiveServer, upstream: FakeUpstreamThread) -> None:
    with any_server.client() as c:
        create_endpoint(c, "smoke-chat", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
    client = openai.OpenAI(base_url=any_server.url + "/serving-endpoints", api_key=any_server.admin_token)
    resp = client.chat.completions.create(model="smoke-chat", messages=[{"role": "user", "content": "hi there"}])
    assert resp.choices[0].message.content == "echo: hi there"
    assert resp.usage is not None and resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
