"""The AI analyst against a fake chat-completions server, through the real groq and openai SDK clients."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from answers import grounded_answer

from ai.analyst import Analyst
from ai.grounding import check_grounding
from ai.offline import OFFLINE_MARK
from ai.providers import ProviderChain, providers_from
from core.settings import Settings
from engine.analysis.pipeline import FlowPipeline
from fakes.chat_completions import FakeChatServer, Reply
from flowbot.ai_config import ai_config
from storage.signal_store import SignalStore


def snapshot_of(request) -> dict:
    return orjson.loads(request.messages[-1]["content"].split("Snapshot: ", 1)[1])


def analyst_for(chat: FakeChatServer, replayed: FlowPipeline, *, timeout: float = 2.0,
                store: SignalStore | None = None, keys: tuple[str, ...] = ("groq", "dashscope", "openai")) -> Analyst:
    env = {"AI_TIMEOUT": str(timeout), "GROQ_BASE_URL": chat.groq_base_url,
           "DASHSCOPE_BASE_URL": chat.dashscope_base_url, "OPENAI_BASE_URL": chat.openai_base_url}
    env.update({f"{name.upper()}_API_KEY": f"key-{name}-secret" for name in keys})
    settings = Settings(_env_file=None, **env)
    chain = ProviderChain(providers_from(ai_config(settings)), timeout=settings.ai_timeout, longest_wait=1.0)
    analyst = Analyst(chain.answer, contexts=replayed.contexts.get, signal_store=store)
    analyst.chain = chain  # type: ignore[attr-defined]
    return analyst


async def test_groq_answers_first_with_the_facts_of_that_signal(chat, replayed, whale) -> None:
    chat.answer_with("groq", grounded_answer)
    explanation = await analyst_for(chat, replayed).explain(whale)
    assert explanation.provider == "groq"
    assert check_grounding(explanation.text, snapshot_of(chat.requests[0]))
    [request] = chat.requests
    assert request.provider == "groq" and request.authorization == "Bearer key-groq-secret"
    assert [m["role"] for m in request.messages] == ["system", "user"]
    assert "No advice to buy or sell" in request.messages[0]["content"]
    facts = snapshot_of(request)
    assert facts["symbol"] == "BTCUSDT" and facts["signal"]["evidence"] == whale.evidence
    assert set(facts["context"]) == {"1m", "5m", "15m", "1h"}
    context = replayed.contexts["BTCUSDT"]
    assert facts["context"]["1h"]["trades"] == context.summary("1h").trade_count


async def test_an_invented_number_is_rejected_and_the_next_provider_answers(chat, replayed, whale) -> None:
    chat.script("groq", Reply(text="Whales bought 987654.321 BTC, a record."))
    chat.answer_with("dashscope", grounded_answer)
    analyst = analyst_for(chat, replayed)
    explanation = await analyst.explain(whale)
    assert explanation.provider == "dashscope"
    assert analyst.chain.rejections == 1
    assert [r.provider for r in chat.requests] == ["groq", "dashscope"]


@pytest.mark.parametrize(
    ("fault", "groq_calls"),
    [
        (Reply(status=500), 2),  # one retry, then the next provider
        (Reply(delay=3.0), 2),  # a timeout, retried once
        (Reply(malformed=True), 1),  # not retried
        (Reply(status=429, retry_after=30), 1),  # too long to wait: move on
    ],
)
async def test_provider_failures_move_on_to_the_next_provider(chat, replayed, whale, fault, groq_calls) -> None:
    chat.script("groq", fault, fault)
    chat.answer_with("dashscope", grounded_answer)
    explanation = await analyst_for(chat, replayed, timeout=0.5).explain(whale)
    assert explanation.provider == "dashscope"
    assert [r.provider for r in chat.requests].count("groq") == groq_calls


async def test_a_short_retry_after_is_waited_for_and_the_same_provider_answers(chat, replayed, whale) -> None:
    chat.script("groq", Reply(status=429, retry_after=0.2))
    chat.answer_with("groq", grounded_answer)
    explanation = await analyst_for(chat, replayed).explain(whale)
    assert explanation.provider == "groq"
    first, second = chat.requests
    assert second.received_at - first.received_at >= 0.2


async def test_every_provider_down_gives_the_marked_offline_text_grounded_in_the_same_facts(chat, replayed,
                                                                                            whale) -> None:
    for provider in ("groq", "dashscope", "openai"):
        chat.script(provider, Reply(status=503), Reply(status=503))
    explanation = await analyst_for(chat, replayed).explain(whale)
    assert explanation.provider == "offline" and explanation.text.startswith(OFFLINE_MARK)
    assert check_grounding(explanation.text, snapshot_of(chat.requests[0]))
    assert len(explanation.text) <= 600


async def test_no_keys_means_no_calls_and_the_offline_text(chat, replayed, whale) -> None:
    explanation = await analyst_for(chat, replayed, keys=()).explain(whale)
    assert explanation.provider == "offline" and chat.requests == []


async def test_a_failing_provider_is_skipped_while_its_circuit_is_open(chat, replayed) -> None:
    signals = [s for s in replayed.found if s.kind == "whale"][:3]  # type: ignore[attr-defined]
    chat.script("groq", *[Reply(status=500)] * 4)
    chat.answer_with("dashscope", grounded_answer)
    analyst = analyst_for(chat, replayed)
    for signal in signals:
        assert (await analyst.explain(signal)).provider == "dashscope"
    assert [r.provider for r in chat.requests].count("groq") == 3  # 2 calls, then 1, then the circuit opened


async def test_one_model_call_per_signal_however_many_subscribers_ask(chat, replayed, whale, tmp_path) -> None:
    chat.answer_with("groq", grounded_answer)
    store = SignalStore(tmp_path / "flowbot.db")
    store.save(whale)
    analyst = analyst_for(chat, replayed, store=store)
    results = await asyncio.gather(*[analyst.explain(whale) for _ in range(20)])
    assert len({r.text for r in results}) == 1 and len(chat.requests) == 1
    assert store.explanation(whale.id) == (results[0].text, "groq")
    store.close()


async def test_keys_never_appear_in_settings_text_or_logs(chat, replayed, whale, caplog) -> None:
    chat.script("groq", Reply(status=500), Reply(status=500))
    chat.answer_with("dashscope", grounded_answer)
    analyst = analyst_for(chat, replayed)
    with caplog.at_level("DEBUG"):
        await analyst.explain(whale)
    assert "secret" not in caplog.text
    assert "secret" not in repr(Settings(_env_file=None, GROQ_API_KEY="key-groq-secret"))


RECORD = {"symbol": "BTCUSDT", "kind": "whale", "direction": "buy", "alerts": 41, "measured": 38,
          "hit_rate": 22 / 38, "median_signed_ret": 0.001134}


async def test_explanations_may_cite_the_kinds_track_record_grounded_like_every_number(chat, replayed, whale) -> None:
    chat.script("groq", Reply(text="Whale buying; such alerts moved their way 71% of the time."))  # not the record
    chat.script("dashscope", Reply(text="Whale buying. Of 41 such alerts in 30 days, 58% moved their way after 15"
                                        " minutes, median +0.11%."))
    analyst = analyst_for(chat, replayed)
    analyst.track_record = lambda signal: RECORD if signal.kind == "whale" else None
    explanation = await analyst.explain(whale)
    assert explanation.provider == "dashscope" and analyst.chain.rejections == 1
    facts = snapshot_of(chat.requests[0])
    assert facts["track_record"] == {"period": "30 days", "horizon": "15 minutes", "alerts": 41, "measured": 38,
                                     "moved_its_way_pct": 58, "median_signed_ret_pct": 0.11}
    assert "track_record (when present)" in chat.requests[0].messages[0]["content"]

    offline = analyst_for(chat, replayed, keys=())
    offline.track_record = analyst.track_record
    text = (await offline.explain(whale)).text
    assert ("Track record: 41 such alerts on BTCUSDT in 30 days, 58% moved its way after 15 minutes, median"
            " +0.11%.") in text
    assert check_grounding(text, facts)
