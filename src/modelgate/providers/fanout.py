"""`n` > 1 for providers whose API answers one choice per call (Anthropic, Bedrock Converse, Cohere).

n calls run concurrently; non-streaming answers are merged into one response with choices 0..n-1 and the
summed usage; streams are interleaved as they arrive, each call's chunks re-indexed to its choice, and their
usage summed into one final chunk with no choices.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

Json = dict[str, Any]
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def merge_choices(responses: list[Json]) -> Json:
    """n fanned-out single-choice responses as one response with n choices and the summed usage."""
    first = dict(responses[0])
    choices = []
    totals = dict.fromkeys(_USAGE_KEYS, 0)
    for i, resp in enumerate(responses):
        choices.append({**resp["choices"][0], "index": i})
        for key in totals:
            totals[key] += int((resp.get("usage") or {}).get(key) or 0)
    first["choices"] = choices
    first["usage"] = totals
    return first


async def fanout_stream(
    open_stream: Callable[[int], AsyncIterator[Json]], n: int, *, reindex: bool = True
) -> AsyncIterator[Json]:
    """Interleave `open_stream(0)` … `open_stream(n-1)` as choices 0..n-1 under the first stream's id
    (`reindex=False`: the streams number their choices themselves).

    The first failure of any stream ends the whole stream with that error; closing this generator (a client
    that went away) cancels every upstream call.
    """
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def pump(i: int) -> None:
        try:
            async for chunk in open_stream(i):
                for choice in chunk.get("choices") or [] if reindex else []:
                    choice["index"] = i
                await queue.put(("chunk", chunk))
            await queue.put(("done", None))
        except Exception as exc:
            await queue.put(("error", exc))

    tasks = [asyncio.create_task(pump(i)) for i in range(n)]
    totals = dict.fromkeys(_USAGE_KEYS, 0)
    first_id: Any = None
    meta: Json = {}
    try:
        remaining = n
        while remaining:
            kind, item = await queue.get()
            if kind == "error":
                raise item
            if kind == "done":
                remaining -= 1
                continue
            usage = item.pop("usage", None)
            if usage:
                for key in totals:
                    totals[key] += int(usage.get(key) or 0)
            if first_id is None:
                first_id = item.get("id")
                meta = {"object": item.get("object"), "created": item.get("created"), "model": item.get("model")}
            item["id"] = first_id
            if item.get("choices"):
                yield item
        yield {"id": first_id, **meta, "choices": [], "usage": totals}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
