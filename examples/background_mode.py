"""Background delivery: a call returns as soon as its record is journaled; a worker sends it.

`delivery="background"` (or LLMRING_USAGE_DELIVERY=background) suits latency-sensitive code:
the worker thread the library owns sends records with bounded concurrency, retries them, and
keeps in the journal what the server does not take. `flush()` waits for what is pending and
reports it; `close()` flushes and stops the worker (it also runs at interpreter exit).
Run: python examples/background_mode.py   (no key, no server needed)
"""

import asyncio

from _offline import offline_llm
from llmring import LLMRing
from llmring.schemas import LLMRequest, Message

from llmring_usage import with_usage_logging


async def main() -> None:
    with offline_llm() as settings:
        ring = with_usage_logging(LLMRing(**settings), delivery="background", origin="example-background")
        requests = [
            LLMRequest(model="fast", messages=[Message(role="user", content=f"Question {n}")])
            for n in range(10)
        ]
        await asyncio.gather(*(ring.chat(request) for request in requests))
        await ring.close()

        report = await ring.usage_logger.aflush(timeout_s=10)
        print(f"flush: delivered={report.delivered} pending={report.pending} rejected={report.rejected}")
        if not ring.usage_logger.sends:
            print("No server configured (LLMRING_SERVER_URL): the records stay in the local journal.")
        print("counters:", ring.usage_logger.counters.snapshot())
        print(f"journal: {ring.usage_logger.journal.path}")
        await ring.usage_logger.aclose()


if __name__ == "__main__":
    asyncio.run(main())
