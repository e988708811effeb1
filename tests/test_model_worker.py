"""Model calls in a worker process: same answers as in-process, through the real SDK, off the engine's loop."""

from __future__ import annotations

import pytest
from answers import grounded_answer

from ai.analyst import Analyst
from ai.offline import OFFLINE_MARK
from ai.worker import ModelWorker
from core.settings import Settings
from fakes.chat_completions import Reply
from flowbot.ai_config import ai_config


@pytest.fixture
async def worker(chat):
    settings = Settings(_env_file=None, GROQ_API_KEY="gsk-worker", GROQ_BASE_URL=chat.groq_base_url,
                        DASHSCOPE_API_KEY="ds-worker", DASHSCOPE_BASE_URL=chat.dashscope_base_url, AI_TIMEOUT="2")
    model_worker = ModelWorker(ai_config(settings))
    await model_worker.start()
    yield model_worker
    await model_worker.close()


async def test_the_worker_process_explains_through_the_first_provider(chat, worker, replayed, whale) -> None:
    chat.answer_with("groq", grounded_answer)
    explanation = await Analyst(worker.answer, contexts=replayed.contexts.get).explain(whale)
    assert explanation.provider == "groq" and "whale trade" in explanation.text
    [request] = chat.requests
    assert request.authorization == "Bearer gsk-worker"


async def test_the_worker_rejects_invented_numbers_and_falls_back_like_in_process(chat, worker, replayed,
                                                                                  whale) -> None:
    chat.script("groq", Reply(text="Whales bought 987654.321 BTC."))
    chat.answer_with("dashscope", grounded_answer)
    analyst = Analyst(worker.answer, contexts=replayed.contexts.get)
    assert (await analyst.explain(whale)).provider == "dashscope"
    for provider in ("groq", "dashscope"):
        chat.script(provider, Reply(status=503), Reply(status=503))
    other = next(s for s in replayed.found if s.kind == "whale" and s.id != whale.id)
    offline = await analyst.explain(other)
    assert offline.provider == "offline" and offline.text.startswith(OFFLINE_MARK)
