"""@log_usage: one usage record per call of your own function, sync or async.

The decorated function may return an llmring LLMResponse or a raw provider SDK response
(OpenAI, Anthropic, Google); llmring-usage finds the model and the tokens in it and prices the
call with llmring's registry. Run: python examples/decorator.py   (no key needed)
"""

import asyncio

import openai
from _offline import offline_llm
from llmring import LLMRing
from llmring.schemas import LLMRequest, Message

from llmring_usage import Journal, log_usage


def main() -> None:
    with offline_llm() as settings:
        # registry_url: where the decorator prices calls (None = llmring's public registry).
        registry_url = settings["registry_url"]

        @log_usage(origin="example-decorator", registry_url=registry_url)
        def summarise(text: str) -> object:
            """Sync, straight on the OpenAI SDK: the raw ChatCompletion is logged."""
            with openai.OpenAI() as client:
                return client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"Summarise: {text}"}]
                )

        @log_usage(origin="example-decorator", registry_url=registry_url)
        async def ask(ring: LLMRing, question: str) -> object:
            """Async, through a plain (unwrapped) LLMRing: the LLMResponse is logged."""
            return await ring.chat(
                LLMRequest(model="openai:gpt-4o-mini", messages=[Message(role="user", content=question)])
            )

        completion = summarise("usage logging keeps one record per LLM call")
        usage = completion.usage
        print(f"sync, raw OpenAI response: {usage.prompt_tokens} in, {usage.completion_tokens} out")

        async def run_async() -> None:
            ring = LLMRing(**settings)
            response = await ask(ring, "Why log usage?")
            usage = response.usage
            print(f"async, LLMResponse: {usage['prompt_tokens']} in, {usage['completion_tokens']} out")
            await ring.close()

        asyncio.run(run_async())

    # With no server configured each record was journaled before the call returned.
    journal = Journal()
    counts = journal.counts()
    print(f"journal {journal.path}: {counts.pending} pending, {counts.delivered} delivered")
    journal.close()


if __name__ == "__main__":
    main()
