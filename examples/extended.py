"""LLMRingExtended: an llmring LLMRingSession that logs its own usage, with no extra code.

chat, chat_with_alias, chat_stream and chat_with_conversation each leave one record; a
conversation's id travels with its record (id_at_origin and metadata.conversation_id).
Run: python examples/extended.py   (no key needed)
"""

import asyncio
import uuid

from _offline import offline_llm
from llmring.schemas import LLMRequest, Message

from llmring_usage import LLMRingExtended


async def main() -> None:
    with offline_llm() as settings:
        # enable_conversations=False: no llmring-server to store the messages on in this example.
        session = LLMRingExtended(origin="example-extended", enable_conversations=False, **settings)
        question = [Message(role="user", content="Name one reason to log LLM usage.")]

        await session.chat(LLMRequest(model="fast", messages=question))

        conversation_id = uuid.uuid4()
        for turn in ("Hello!", "And a second turn."):
            request = LLMRequest(model="openai:gpt-4o-mini", messages=[Message(role="user", content=turn)])
            await session.chat_with_conversation(request, conversation_id=conversation_id)

        await session.close()
        session.usage_logger.flush()
        rows = session.usage_logger.journal.query(
            "SELECT COUNT(*) AS n FROM records WHERE json_extract(body, '$.id_at_origin') = ?",
            (str(conversation_id),),
        )
        print(f"3 calls logged; {rows[0]['n']} records carry conversation {conversation_id}")
        print(f"journal: {session.usage_logger.journal.path}")
        session.usage_logger.close()


if __name__ == "__main__":
    asyncio.run(main())
