"""The words of rules: the /alert replies (merged into bot/messages.py's catalogue) and the firing text."""

from __future__ import annotations

import time
from decimal import Decimal

from bot.i18n import translate
from bot.rules.grammar import RuleSpec
from bot.rules.metrics import METRICS, SPANS_MS

EXAMPLES = "/alert BTCUSDT price > 100000\n/alert ETHUSDT delta 5m < -500"

RULE_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "command.alert": "Your own alert: price, delta, CVD, buy share, volume, whales, futures data",
        "command.alerts": "Your alert rules",
        "usage.alert": "SYMBOL METRIC [SPAN] >|<|crosses VALUE | delete|pause|resume ID | confirm",
        "rule.not_understood": "I could not understand {part}: {reason}",
        "rule.not_understood.hint": "Two rules I understand:\n" + EXAMPLES + "\nSee /help alert.",
        "rule.empty": "the rule is empty.",
        "rule.bad_symbol": "it is not a symbol I follow ({symbols}).",
        "rule.no_metric": "a metric should follow the symbol.",
        "rule.bad_metric": "metrics are {metrics}.",
        "rule.bad_span": "spans are {spans}.",
        "rule.no_condition": "a condition should follow: > VALUE, < VALUE or crosses VALUE.",
        "rule.bad_op": "the comparison is >, < or crosses.",
        "rule.no_value": "a value should follow the comparison.",
        "rule.one_value": "give one value after the comparison.",
        "rule.bad_value": "it is not a number (100000, 95k, 1.5M, -500, 80%, 3x).",
        "rule.no_span_here": "this metric takes no span.",
        "rule.op_not_here": "this metric only takes >.",
        "rule.suffix_not_here": "this metric takes a plain number here.",
        "rule.oi_change": "open interest is a value (oi > 1000) or a change over a span (oi 15m > 2%).",
        "rule.percent_range": "a share is between 0% and 100%.",
        "rule.positive": "the value must be above zero.",
        "rule.limit": "This chat has {limit} rules already, the most it may hold.",
        "rule.limit.hint": "Delete one with /alert delete ID (see /alerts).",
        "rule.no_futures": "{symbol} has no {metric} data here.",
        "rule.no_futures.hint": "Liquidations, open interest and funding come from USD-M futures (MARKET=usdm);"
                                " this Flowbot follows the spot market.",
        "rule.created": "Rule #{id} set: {rule}",
        "rule.created.hint": "{semantics} Firings come here, at most one a minute per rule. /alerts lists your"
                             " rules.",
        "rule.semantics.cross": "It fires each time the value crosses {value}.",
        "rule.semantics.level": "It fires when this becomes true (now, if it already is) and again after it"
                                " stopped being true.",
        "rule.semantics.whale": "It fires on each such trade.",
        "rule.unknown_id": "You have no rule #{id}.",
        "rule.unknown_id.hint": "See /alerts for your rules' ids.",
        "rule.deleted": "Rule #{id} deleted.",
        "rule.paused": "Rule #{id} paused.",
        "rule.resumed": "Rule #{id} resumed.",
        "rule.which_id": "Which rule? /alert {action} ID (see /alerts).",
        "rule.nothing_to_confirm": "There is no proposed rule to confirm.",
        "rule.nothing_to_confirm.hint": "Ask for one, e.g. /ask tell me when BTC's CVD turns negative.",
        "rule.proposal": "I understood: /alert {rule}",
        "rule.proposal.confirm_button": "Press Confirm to set it; nothing is stored before.",
        "rule.proposal.confirm_command": "Send /alert confirm to set it; nothing is stored before.",
        "button.confirm": "Confirm",
        "button.delete": "Delete #{id}",
        "button.pause": "Pause #{id}",
        "button.resume": "Resume #{id}",
        "alerts": "Your alert rules",
        "alerts.empty": "You have no alert rules.",
        "alerts.empty.hint": "Set one, e.g. /alert {symbol} price > 100000.",
        "alerts.line": "#{id} {rule}: {state}, {fired}",
        "alerts.never": "never fired",
        "alerts.last": "fired {count} time(s), last {when} ({value})",
        "alerts.state.active": "active",
        "alerts.state.paused": "paused",
        "help.alert": "Alert rules",
        "help.alert.body": "/alert SYMBOL METRIC [SPAN] > | < | crosses VALUE\n"
                           "> and < fire when the condition becomes true (at once if it already holds) and"
                           " re-arm when it stops holding; crosses fires on a crossing only. Price and whale rules"
                           " are judged on every trade batch (a trade through the level fires), the others on"
                           " every closed window (market time). At most one firing a minute per rule; quiet"
                           " hours deliver silently.\nSpans: {spans}. Values: 100000, 95k, 1.5M, -500, 80%, 3x."
                           "\nMetrics:\n{metrics}\n/alerts lists your rules; /alert delete|pause|resume ID.",
        "fired": "🔔 {rule}",
        "fired.body": "{metric} {value} at {time} UTC\n/flow {symbol} · /chart {symbol}",
    },
    "pt": {
        "command.alert": "Seu próprio alerta: preço, delta, CVD, compras, volume, baleias, futuros",
        "command.alerts": "Suas regras de alerta",
        "usage.alert": "SÍMBOLO MÉTRICA [PERÍODO] >|<|crosses VALOR | delete|pause|resume ID | confirm",
        "rule.not_understood": "Não entendi {part}: {reason}",
        "rule.not_understood.hint": "Duas regras que entendo:\n" + EXAMPLES + "\nVeja /help alert.",
        "rule.empty": "a regra está vazia.",
        "rule.bad_symbol": "não é um símbolo que eu acompanho ({symbols}).",
        "rule.no_metric": "depois do símbolo vem uma métrica.",
        "rule.bad_metric": "as métricas são {metrics}.",
        "rule.bad_span": "os períodos são {spans}.",
        "rule.no_condition": "falta a condição: > VALOR, < VALOR ou crosses VALOR.",
        "rule.bad_op": "a comparação é >, < ou crosses.",
        "rule.no_value": "falta o valor depois da comparação.",
        "rule.one_value": "dê um só valor depois da comparação.",
        "rule.bad_value": "não é um número (100000, 95k, 1.5M, -500, 80%, 3x).",
        "rule.no_span_here": "esta métrica não leva período.",
        "rule.op_not_here": "esta métrica só aceita >.",
        "rule.suffix_not_here": "esta métrica leva um número simples aqui.",
        "rule.oi_change": "interesse aberto é um valor (oi > 1000) ou uma variação num período (oi 15m > 2%).",
        "rule.percent_range": "uma parcela fica entre 0% e 100%.",
        "rule.positive": "o valor precisa ser maior que zero.",
        "rule.limit": "Este chat já tem {limit} regras, o máximo permitido.",
        "rule.limit.hint": "Apague uma com /alert delete ID (veja /alerts).",
        "rule.no_futures": "{symbol} não tem dados de {metric} aqui.",
        "rule.no_futures.hint": "Liquidações, interesse aberto e funding vêm dos futuros USD-M (MARKET=usdm);"
                                " este Flowbot acompanha o mercado spot.",
        "rule.created": "Regra #{id} criada: {rule}",
        "rule.created.hint": "{semantics} Os disparos chegam aqui, no máximo um por minuto por regra. /alerts"
                             " lista suas regras.",
        "rule.semantics.cross": "Dispara cada vez que o valor cruza {value}.",
        "rule.semantics.level": "Dispara quando isto passa a valer (agora, se já vale) e de novo depois de deixar"
                                " de valer.",
        "rule.semantics.whale": "Dispara a cada negócio assim.",
        "rule.unknown_id": "Você não tem a regra #{id}.",
        "rule.unknown_id.hint": "Veja os ids das suas regras em /alerts.",
        "rule.deleted": "Regra #{id} apagada.",
        "rule.paused": "Regra #{id} pausada.",
        "rule.resumed": "Regra #{id} retomada.",
        "rule.which_id": "Qual regra? /alert {action} ID (veja /alerts).",
        "rule.nothing_to_confirm": "Não há regra proposta para confirmar.",
        "rule.nothing_to_confirm.hint": "Peça uma, por exemplo /ask tell me when BTC's CVD turns negative.",
        "rule.proposal": "Entendi: /alert {rule}",
        "rule.proposal.confirm_button": "Toque em Confirmar para criá-la; nada é guardado antes.",
        "rule.proposal.confirm_command": "Envie /alert confirm para criá-la; nada é guardado antes.",
        "button.confirm": "Confirmar",
        "button.delete": "Apagar #{id}",
        "button.pause": "Pausar #{id}",
        "button.resume": "Retomar #{id}",
        "alerts": "Suas regras de alerta",
        "alerts.empty": "Você não tem regras de alerta.",
        "alerts.empty.hint": "Crie uma, por exemplo /alert {symbol} price > 100000.",
        "alerts.line": "#{id} {rule}: {state}, {fired}",
        "alerts.never": "nunca disparou",
        "alerts.last": "disparou {count} vez(es), a última em {when} ({value})",
        "alerts.state.active": "ativa",
        "alerts.state.paused": "pausada",
        "help.alert": "Regras de alerta",
        "help.alert.body": "/alert SÍMBOLO MÉTRICA [PERÍODO] > | < | crosses VALOR\n"
                           "> e < disparam quando a condição passa a valer (na hora, se já vale) e se rearmam"
                           " quando ela deixa de valer; crosses dispara só no cruzamento. Regras de preço e de"
                           " baleia são julgadas a cada lote de negócios (um negócio através do nível dispara),"
                           " as outras a cada janela fechada (tempo do mercado). No máximo um disparo por minuto"
                           " por regra; nas horas de silêncio chegam sem som.\nPeríodos: {spans}. Valores: 100000,"
                           " 95k, 1.5M, -500, 80%, 3x.\nMétricas:\n{metrics}\n/alerts lista suas regras;"
                           " /alert delete|pause|resume ID.",
        "fired": "🔔 {rule}",
        "fired.body": "{metric} {value} às {time} UTC\n/flow {symbol} · /chart {symbol}",
    },
}

UNITS = {"buy_share": "%", "oi_pct": "%", "funding": "%", "volume_x": "x"}


def display(value: Decimal) -> str:
    """A value as firings and /alerts show it: exact amounts as they are, long fractions to 4 places."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        value = value.quantize(Decimal("0.0001"))
    return format(value.normalize(), ",f")


def rule_title(language: str, spec: RuleSpec) -> str:
    """A firing's title: the rule."""
    return translate(RULE_MESSAGES, language, "fired", rule=spec.text)


def rule_body(language: str, spec: RuleSpec, value: Decimal, at_ms: int) -> str:
    """A firing's body: the value that fired it, the time, and /flow and /chart."""
    unit = UNITS.get(spec.measure.partition("@")[0], "")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at_ms / 1000))
    return translate(RULE_MESSAGES, language, "fired.body", metric=spec.metric, value=display(value) + unit,
                     time=when, symbol=spec.symbol)


def metric_lines() -> str:
    return "\n".join(f"• {m.name}: {m.doc}" for m in METRICS.values())


def rule_help(language: str) -> tuple[str, str]:
    """/help alert: the grammar, its semantics, the spans and each metric."""
    body = translate(RULE_MESSAGES, language, "help.alert.body", spans=", ".join(SPANS_MS), metrics=metric_lines())
    return translate(RULE_MESSAGES, language, "help.alert"), body
