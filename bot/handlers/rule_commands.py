"""/alert and /alerts: users' own alert rules, declared on the same registry as every other command."""

from __future__ import annotations

import time

from bot.handlers.commands import COMMANDS, Commands, subscriber_of
from bot.handlers.registry import Argument, ArgumentKind
from bot.messages import Say
from bot.models import Button, Caller, Message
from bot.rules.grammar import LEAD, RuleError, RuleSpec, parse_rule
from bot.rules.messages import display
from bot.rules.metrics import METRICS, SPANS_MS, Op
from bot.rules.service import RuleService
from bot.rules.store import ACTIVE, Rule

ACTIONS = ("delete", "pause", "resume")
CALLBACK_LIMIT = 64  # bytes of Telegram callback data


def _service(commands: Commands) -> RuleService:
    assert commands.rules is not None, "the bot service gives Commands its RuleService"
    return commands.rules


@COMMANDS.command("alert", Argument("rule", ArgumentKind.RULE, "e.g. BTCUSDT price > 100000, or delete 3"))
async def alert(commands: Commands, caller: Caller, args: list[str], say: Say) -> Message:
    rules = _service(commands)
    action = args[0].lower() if args else ""
    if action in ACTIONS:
        return _act(rules, caller, action, args[1:], say)
    if action == "confirm":
        spec = rules.proposals.pop((caller.destination, caller.user_id), None)
        if spec is None:
            return Message(say("rule.nothing_to_confirm"), say("rule.nothing_to_confirm.hint"))
        return _create(commands, rules, caller, spec, say)
    if action == "list":
        return await alerts(commands, caller, [], say)
    parsed = parse_rule(" ".join(args), commands.symbols)
    if isinstance(parsed, RuleError):
        return _not_understood(commands, parsed, say)
    return _create(commands, rules, caller, parsed, say)


def _not_understood(commands: Commands, error: RuleError, say: Say) -> Message:
    part = repr(error.part[:40]) if error.part else "/alert"
    reason = say(error.reason, symbols=", ".join(commands.symbols), metrics=", ".join(METRICS),
                 spans=", ".join(SPANS_MS))
    return Message(say("rule.not_understood", part=part, reason=reason), say("rule.not_understood.hint"))


def _create(commands: Commands, rules: RuleService, caller: Caller, spec: RuleSpec, say: Say) -> Message:
    if METRICS[spec.metric].futures and not rules.futures:
        return Message(say("rule.no_futures", symbol=spec.symbol, metric=spec.metric), say("rule.no_futures.hint"))
    if not rules.room_left(caller.destination):
        return Message(say("rule.limit", limit=rules.limits.per_chat), say("rule.limit.hint"))
    commands.subscriptions.ensure_chat(subscriber_of(caller), is_private=caller.is_private,
                                       channel_id=commands._channel(caller))
    rule = rules.create(caller.destination, subscriber_of(caller), caller.user_id, spec)
    if spec.op is Op.CROSSES:
        semantics = say("rule.semantics.cross", value=display(spec.threshold))
    else:
        semantics = say("rule.semantics.whale" if spec.metric == "whale" else "rule.semantics.level")
    return Message(say("rule.created", id=rule.id, rule=spec.text), say("rule.created.hint", semantics=semantics))


def _act(rules: RuleService, caller: Caller, action: str, args: list[str], say: Say) -> Message:
    """delete, pause or resume a rule of this chat by id."""
    if len(args) != 1 or not args[0].lstrip("#").isdigit():
        return Message(say("rule.which_id", action=action))
    rule_id = int(args[0].lstrip("#"))
    rule = rules.owned(caller.destination, rule_id)
    if rule is None:
        return Message(say("rule.unknown_id", id=rule_id), say("rule.unknown_id.hint"))
    {"delete": rules.delete, "pause": rules.pause, "resume": rules.resume}[action](rule)
    done = Message(say({"delete": "rule.deleted", "pause": "rule.paused", "resume": "rule.resumed"}[action],
                       id=rule_id))
    listing = _listing(rules, caller, say)
    return Message(done.title, listing.body, buttons=listing.buttons)


@COMMANDS.command("alerts")
async def alerts(commands: Commands, caller: Caller, args: list[str], say: Say) -> Message:
    rules = _service(commands)
    if not rules.chat_rules(caller.destination):
        return Message(say("alerts.empty"), say("alerts.empty.hint", symbol=commands.symbols[0]))
    return _listing(rules, caller, say)


def _listing(rules: RuleService, caller: Caller, say: Say) -> Message:
    """The chat's rules with ids, state and last firing; Telegram gets delete and pause/resume buttons."""
    held = rules.chat_rules(caller.destination)
    lines = [say("alerts.line", id=rule.id, rule=rule.spec.text, state=say(f"alerts.state.{rule.state}"),
                 fired=_fired(rule, say)) for rule in held]
    buttons: tuple[tuple[Button, ...], ...] = ()
    if caller.destination.platform == "telegram":
        buttons = tuple(
            (Button(say("button.delete", id=rule.id), f"alert delete {rule.id}"),
             Button(say("button.pause", id=rule.id), f"alert pause {rule.id}") if rule.state == ACTIVE
             else Button(say("button.resume", id=rule.id), f"alert resume {rule.id}"))
            for rule in held
        )
    return Message(say("alerts"), "\n".join(lines) or say("alerts.empty"), buttons=buttons)


def _fired(rule: Rule, say: Say) -> str:
    if rule.last_fired_ms is None:
        return say("alerts.never")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(rule.last_fired_ms / 1000))
    return say("alerts.last", count=rule.fired_count, when=when, value=rule.last_value)


def proposal(commands: Commands, caller: Caller, question: str, say: Say) -> Message | None:
    """/ask with a request for an alert ("tell me when BTC's CVD turns negative"): the rule understood, to
    confirm (a button on Telegram, /alert confirm elsewhere); None when the question asks for no alert."""
    if commands.rules is None or LEAD.match(question.strip()) is None:
        return None
    parsed = parse_rule(question, commands.symbols)
    if isinstance(parsed, RuleError):
        return _not_understood(commands, parsed, say)
    commands.rules.proposals[(caller.destination, caller.user_id)] = parsed
    title = say("rule.proposal", rule=parsed.text)
    if caller.destination.platform == "telegram":
        data = f"alert {parsed.text}"
        data = data if len(data.encode()) <= CALLBACK_LIMIT else "alert confirm"
        return Message(title, say("rule.proposal.confirm_button"), buttons=((Button(say("button.confirm"), data),),))
    return Message(title, say("rule.proposal.confirm_command"))
