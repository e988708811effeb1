"""Command replies in the chat's language: the catalogue is complete in Portuguese, and a chat that switched
to Portuguese is answered in Portuguese."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from bot.database import open_database
from bot.handlers.commands import COMMANDS, Commands
from bot.messages import MESSAGES
from bot.models import Caller, Destination
from bot.outbox import Outbox
from bot.subscriptions import Subscriptions
from storage.feature_store import FeatureStore

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
BRUNA = Caller(Destination("telegram", "2002"), user_id="2002")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_english_message_has_a_portuguese_one_with_the_same_placeholders() -> None:
    assert set(MESSAGES["pt"]) == set(MESSAGES["en"])
    for key, english in MESSAGES["en"].items():
        assert placeholders(MESSAGES["pt"][key]) == placeholders(english), key


def test_every_command_has_a_description_and_its_arguments_a_usage_line() -> None:
    for spec in COMMANDS:
        assert f"command.{spec.name}" in MESSAGES["en"]
        assert (f"usage.{spec.name}" in MESSAGES["en"]) == bool(spec.arguments), spec.name


@pytest.fixture
def commands(tmp_path: Path) -> Commands:
    db = open_database(tmp_path / "flowbot.db")
    return Commands(
        subscriptions=Subscriptions(db), outbox=Outbox(db, 30), store=FeatureStore(tmp_path / "store"),
        symbols=SYMBOLS, asker=None,
        feed_health=lambda: {"healthy": False, "symbols": {"BTCUSDT": {"last_trade_age_s": None}},
                             "connections": {"spot-0": {"connected": False, "reconnects": 1}}},
    )


async def test_a_chat_that_chose_portuguese_is_answered_in_portuguese(commands: Commands) -> None:
    assert (await commands.run(BRUNA, "settings", ["language", "pt"])).title == "Saved."

    assert (await commands.run(BRUNA, "list", [])).title == "Nenhuma inscrição ainda."
    subscribed = await commands.run(BRUNA, "subscribe", ["btc"])
    assert subscribed.title == "Inscrito em BTCUSDT (todos os tipos)."
    assert (await commands.run(BRUNA, "list", [])).body == "BTCUSDT: todos os tipos"
    assert (await commands.run(BRUNA, "flow", [])).title == "Uso: /flow SÍMBOLO [5m|15m|1h|4h|24h]"
    assert (await commands.run(BRUNA, "chart", ["XRP"])).title == "Não acompanho 'XRP'."
    assert (await commands.run(BRUNA, "flow", ["BTCUSDT"])).title == "Ainda não há fluxo salvo para BTCUSDT."
    assert (await commands.run(BRUNA, "frobnicate", [])).title == "Comando desconhecido: /frobnicate."
    assert (await commands.run(BRUNA, "admin", [])).title == "Esse comando é só para os administradores do bot."
    assert (await commands.run(BRUNA, "ask", ["oi"])).title == "Perguntas não estão disponíveis aqui."

    status = await commands.run(BRUNA, "status", [])
    assert status.title == "Feed COM PROBLEMAS, conectando"
    assert "BTCUSDT: nenhum negócio ainda" in status.body
    assert "Conexão spot-0: desconectada, 1 reconexões" in status.body

    help_reply = await commands.run(BRUNA, "help", [])
    assert help_reply.title == "Comandos do Flowbot"
    assert "/subscribe SÍMBOLO... [tipos]: Alertas de símbolos, se quiser só de alguns tipos" in help_reply.body

    shown = await commands.run(BRUNA, "settings", [])
    assert shown.title == "Suas configurações de alerta"
    assert "Idioma: Português" in shown.body
    assert "Horário silencioso (os alertas chegam sem som): desligado" in shown.body
    assert (await commands.run(BRUNA, "settings", ["severity", "9"])).title == "A severidade é 1, 2 ou 3."
    assert (await commands.on_button(BRUNA, "stale")).title == "Esse botão não vale mais."

    assert (await commands.run(BRUNA, "settings", ["language", "en"])).title == "Salvo."
    assert (await commands.run(BRUNA, "list", [])).body == "BTCUSDT: all kinds"
