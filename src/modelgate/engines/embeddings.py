"""Sentence embeddings with sentence-transformers, coalescing concurrent requests into one encode() call.

One worker thread owns the model: requests queue up while it encodes, and the next round takes everything
queued (up to `max_batch_size` texts), so concurrent callers share a batch and the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass
from typing import Any

from modelgate.engines.engine import Embeddings, Engine


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future[Embeddings]
    loop: asyncio.AbstractEventLoop


class SentenceTransformerEngine(Engine):
    def __init__(self, location: str, *, max_batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self.model: Any = SentenceTransformer(location, device="cpu", local_files_only=True)
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.max_batch_size = max_batch_size
        self.batches = 0  # encode() calls so far; tests read it to see coalescing
        self._jobs: queue.Queue[_Job] = queue.Queue()
        threading.Thread(target=self._work, name="embeddings", daemon=True).start()

    async def embed(self, texts: list[str]) -> Embeddings:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Embeddings] = loop.create_future()
        self._jobs.put(_Job(texts, future, loop))
        return await future

    def _work(self) -> None:
        while True:
            jobs = [self._jobs.get()]
            size = len(jobs[0].texts)
            while size < self.max_batch_size:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                jobs.append(job)
                size += len(job.texts)
            try:
                results: list[Embeddings | BaseException] = list(self._encode(jobs))
            except BaseException as exc:
                results = [exc] * len(jobs)
            for job, result in zip(jobs, results, strict=True):
                job.loop.call_soon_threadsafe(_settle, job.future, result)

    def _encode(self, jobs: list[_Job]) -> list[Embeddings]:
        texts = [t for job in jobs for t in job.texts]
        vectors = self.model.encode(texts, batch_size=self.max_batch_size, normalize_embeddings=True)
        self.batches += 1
        # Count the tokens the model saw (special tokens included, truncated at its max length).
        ids = self.model.tokenizer(texts, truncation=True, max_length=self.model.max_seq_length)["input_ids"]
        out, start = [], 0
        for job in jobs:
            end = start + len(job.texts)
            out.append(
                Embeddings(
                    vectors=[[float(x) for x in v] for v in vectors[start:end]],
                    prompt_tokens=sum(len(i) for i in ids[start:end]),
                )
            )
            start = end
        return out


def _settle(future: asyncio.Future[Embeddings], result: Embeddings | BaseException) -> None:
    if future.done():  # the caller went away
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
