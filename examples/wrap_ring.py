"""with_usage_logging: wrap an existing LLMRing, and every call leaves one usage record.

Run: python examples/wrap_ring.py   (no key needed; see _offline.py)
With no server configured the records go to the local journal; set LLMRING_SERVER_URL and
LLMRING_API_KEY to send them to llmring-server as well.
"""

import asyncio

from _offline import offline_llm
from llmring import LLMRing
from llmring.schemas import LLMRequest, Message

from llmring_usage import with_usage_logging


async def main() -> None:
    with offline_llm() as settings:
        ring = with_usage_logging(LLMRing(**settings), origin="example-wrap-ring")
        messages = [Message(role="user", content="What is a usage record?")]

        response = await ring.chat(LLMRequest(model="openai:gpt-4o-mini", messages=messages))
        print("chat:", response.content[:60], "...")

        response = await ring.chat_with_alias("fast", messages=messages)
        print("chat_with_alias('fast'):", response.model)

        chunks = [chunk async for chunk in ring.chat_stream(LLMRequest(model="smart", messages=messages))]
        print("chat_stream('smart'):", len(chunks), "chunks")

        await ring.close()
        usage_logger = ring.usage_logger
        usage_logger.flush()
        counts = usage_logger.journal.counts()
        print(f"journal {usage_logger.journal.path}: {counts.pending} pending, {counts.delivered} delivered")
        usage_logger.close()


if __name__ == "__main__":
    asyncio.run(main())
