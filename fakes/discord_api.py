"""Fake Discord (REST API v10 + gateway WebSocket) on 127.0.0.1, for the real discord.py 2.x client.

Pointing discord.py at it: discord.py has no base-URL option; both addresses are process-wide class attributes.
  discord.http.Route.BASE = fake.api_base
      every REST call, bot routes and webhook / interaction routes alike (discord.webhook imports this Route)
  discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
      the first connection: a plain Client never asks GET /gateway/bot (AutoShardedClient does; it gets this URL)
Resumes go to READY's resume_gateway_url, which is this fake's gateway URL; after INVALID_SESSION discord.py goes
back to DEFAULT_GATEWAY. Webhook.from_url only accepts discord.com/api/webhooks/ID/TOKEN (it ignores the host), so
fake webhooks have such URLs and their requests come here through Route.BASE.

Gateway: JSON encoding, as text frames or zlib-stream (one compressobj per connection, Z_SYNC_FLUSH per message),
which discord.py asks for when zstandard is not installed. 429 answers carry a Via header: discord.py takes a 429
without one for a Cloudflare ban and raises instead of waiting retry_after.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
import secrets
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from aiohttp import WSMsgType, web

from fakes.loopback import LoopbackServer

Json = dict[str, Any]

API_PREFIX = "/api/v10"
GATEWAY_PATH = "/gateway"
TOKEN = "MTMxMDAwMDAwMDAwMDAwMDAwMQ.GfAkEd.fake-discord-bot-token-for-flowbot-tests"
DISCORD_EPOCH_MS = 1_420_070_400_000
APPLICATION_ID = 1_310_000_000_000_000_001
BOT_USER_ID = APPLICATION_ID  # a bot's user id is its application's id
OWNER_ID = 1_310_000_000_000_000_009
GUILD_ID = 1_310_000_000_000_000_100
ALERTS_CHANNEL_ID = 1_310_000_000_000_000_101
GENERAL_CHANNEL_ID = 1_310_000_000_000_000_102
MODERATOR_ID = 1_310_000_000_000_000_201
TRADER_ID = 1_310_000_000_000_000_202
MODERATOR_ROLE_ID = 1_310_000_000_000_000_301
BOT_ROLE_ID = 1_310_000_000_000_000_302

ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
ALL_PERMISSIONS = (1 << 51) - 1
EVERYONE_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | USE_APPLICATION_COMMANDS
BOT_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY

GUILD_MEMBERS_INTENT = 1 << 1
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
APPLICATION_FLAGS = 1 << 23  # APPLICATION_COMMAND_BADGE
EPHEMERAL = 1 << 6
LOADING = 1 << 7
CONTENT_LIMIT = 2000
EMBEDS_LIMIT = 10
EMBED_TOTAL_LIMIT = 6000
_EMBED_TEXT_LIMITS = (("title", 256), ("description", 4096))
_EMBED_PART_LIMITS = (("footer", "text", 2048), ("author", "name", 256))
_FIELDS_LIMIT = 25
_FIELD_LIMITS = (("name", 256), ("value", 1024))
_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_SNOWFLAKE_OPTION_TYPES = frozenset({6, 7, 8, 9, 11})
_SUBCOMMAND_TYPES = frozenset({1, 2})
_CLOSE_TIMEOUT = 1.0  # seconds the server waits for the client's close frame


def _now_iso() -> str:
    """The current UTC time as Discord writes timestamps."""
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class FakeRole:
    """A guild role besides @everyone."""

    id: int
    name: str
    permissions: int
    position: int = 1


@dataclass(frozen=True)
class FakeMember:
    """A guild member; its permissions are @everyone's plus those of its roles."""

    id: int
    name: str
    roles: tuple[int, ...] = ()
    bot: bool = False


@dataclass
class FakeGuild:
    """A guild with text channels (name -> id, in position order), roles and members."""

    id: int
    name: str
    channels: dict[str, int]
    roles: list[FakeRole]
    members: list[FakeMember]
    everyone_permissions: int = EVERYONE_PERMISSIONS
    owner_id: int = OWNER_ID

    @classmethod
    def default(cls) -> FakeGuild:
        """One guild: #alerts and #general; a moderator (Manage Channels), a trader (no role) and the bot."""
        return cls(
            id=GUILD_ID,
            name="Flow Traders",
            channels={"alerts": ALERTS_CHANNEL_ID, "general": GENERAL_CHANNEL_ID},
            roles=[
                FakeRole(MODERATOR_ROLE_ID, "Moderator", MANAGE_CHANNELS | MANAGE_GUILD, position=2),
                FakeRole(BOT_ROLE_ID, "Flowbot", BOT_PERMISSIONS),
            ],
            members=[
                FakeMember(MODERATOR_ID, "moderator", (MODERATOR_ROLE_ID,)),
                FakeMember(TRADER_ID, "trader"),
                FakeMember(BOT_USER_ID, "Flowbot", (BOT_ROLE_ID,), bot=True),
            ],
        )

    def member(self, member_id: int) -> FakeMember:
        """The member with this id; LookupError if it is not in the guild."""
        for member in self.members:
            if member.id == member_id:
                return member
        raise LookupError(f"user {member_id} is not a member of guild {self.id}")

    def permissions_of(self, member: FakeMember) -> int:
        """Guild-level permissions as Discord computes them (owner and administrators have all)."""
        if member.id == self.owner_id:
            return ALL_PERMISSIONS
        permissions = self.everyone_permissions
        for role in self.roles:
            if role.id in member.roles:
                permissions |= role.permissions
        return ALL_PERMISSIONS if permissions & ADMINISTRATOR else permissions


@dataclass(frozen=True)
class FakeWebhook:
    """An incoming webhook of a channel."""

    id: int
    token: str
    channel_id: int
    name: str

    @property
    def url(self) -> str:
        """The URL as Discord hands it out (the form Webhook.from_url accepts)."""
        return f"https://discord.com/api/webhooks/{self.id}/{self.token}"


@dataclass
class SentFile:
    """An uploaded attachment."""

    id: int
    filename: str
    content_type: str
    data: bytes


@dataclass
class SentMessage:
    """A message as the fake stores it; edits holds each accepted PATCH body, in order."""

    id: int
    channel_id: int
    author: Json
    content: str
    embeds: list[Json]
    files: list[SentFile]
    flags: int
    body: Json
    type: int = 0
    webhook_id: int | None = None
    edited_at: str | None = None
    created_at: str = field(default_factory=_now_iso)
    edits: list[Json] = field(default_factory=list)


@dataclass
class DispatchedInteraction:
    """An interaction the fake sent (kind 2 command, 4 autocomplete) and the client's answer.

    type and data are the callback's (4 message, 5 deferred, 8 autocomplete choices); original is the response
    message (types 4 and 5, edited through @original); followups are the messages posted with the token.
    """

    id: int
    token: str
    kind: int
    guild_id: int
    channel_id: int
    user_id: int
    payload: Json = field(default_factory=dict)
    type: int | None = None
    data: Json = field(default_factory=dict)
    original: SentMessage | None = None
    followups: list[SentMessage] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        """True once the client posted its callback."""
        return self.type is not None


class RestCall(NamedTuple):
    """One REST request: method, path below the API prefix, answered status."""

    method: str
    path: str
    status: int


@dataclass
class _Failure:
    """Faults queued by fail_next for requests matching a method and/or path prefix."""

    method: str | None
    prefix: str
    count: int
    status: int
    retry_after: float
    global_: bool

    def matches(self, method: str, path: str) -> bool:
        """True if the request is one this failure applies to."""
        return self.method in (None, method) and path.startswith(self.prefix)

    def response(self) -> web.Response:
        """The faulty answer."""
        if self.status != 429:
            return _error(self.status, 0, f"{self.status}: fake server error")
        body = {"message": "You are being rate limited.", "retry_after": self.retry_after, "global": self.global_}
        headers = {
            "Retry-After": str(max(1, round(self.retry_after))),
            "X-RateLimit-Scope": "global" if self.global_ else "user",
            "Via": "1.1 google",
        }
        if self.global_:
            headers["X-RateLimit-Global"] = "true"
        return _json_response(body, status=429, headers=headers)


@dataclass
class _Session:
    """A gateway session (survives a reconnect for RESUME)."""

    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0


class _GatewaySocket:
    """One gateway WebSocket connection; frames are JSON text or zlib-stream binary."""

    def __init__(self, ws: web.WebSocketResponse, compressed: bool) -> None:
        self.ws = ws
        self.session: _Session | None = None
        self._zlib = zlib.compressobj() if compressed else None
        self._lock = asyncio.Lock()  # keeps the compressed stream in send order

    async def send(self, op: int, data: Any, event: str | None = None) -> None:
        """Send one gateway payload; a dispatch (op 0) takes the session's next sequence number."""
        seq = None
        if op == 0 and self.session is not None:
            self.session.seq += 1
            seq = self.session.seq
        raw = orjson.dumps({"op": op, "d": data, "s": seq, "t": event})
        async with self._lock:
            if self._zlib is None:
                await self.ws.send_str(raw.decode())
            else:
                await self.ws.send_bytes(self._zlib.compress(raw) + self._zlib.flush(zlib.Z_SYNC_FLUSH))


def _json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response with Content-Type exactly application/json (discord.py compares the header verbatim)."""
    return web.Response(body=orjson.dumps(body), status=status, headers=headers, content_type="application/json")


def _error(status: int, code: int, message: str, errors: Json | None = None) -> web.Response:
    """A Discord error body: code, message and, for form errors, the nested errors object."""
    body: Json = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return _json_response(body, status=status)


def _form_error(errors: Json) -> web.Response:
    """A 400 Invalid Form Body (code 50035)."""
    return _error(400, 50035, "Invalid Form Body", errors)


def _field_error(code: str, message: str) -> Json:
    """The errors entry of one invalid form field."""
    return {"_errors": [{"code": code, "message": message}]}


def _too_long(limit: int) -> Json:
    """The error entry for a string or list over its limit."""
    return _field_error("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _user_json(member: FakeMember) -> Json:
    """A user object."""
    return {
        "id": str(member.id),
        "username": member.name,
        "discriminator": "0",
        "global_name": None if member.bot else member.name.title(),
        "avatar": None,
        "bot": member.bot,
        "system": False,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
        "collectibles": None,
        "primary_guild": None,
        "clan": None,
    }


def _member_json(member: FakeMember, joined_at: str) -> Json:
    """A guild member object with its user."""
    return {
        "user": _user_json(member),
        "roles": [str(role) for role in member.roles],
        "joined_at": joined_at,
        "nick": None,
        "avatar": None,
        "banner": None,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
        "unusual_dm_activity_until": None,
    }


def _role_json(role_id: int, name: str, permissions: int, position: int) -> Json:
    """A role object."""
    return {
        "id": str(role_id),
        "name": name,
        "permissions": str(permissions),
        "position": position,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "icon": None,
        "unicode_emoji": None,
        "description": None,
        "flags": 0,
    }


def _channel_json(guild: FakeGuild, name: str, channel_id: int) -> Json:
    """A text channel object."""
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild.id),
        "name": name,
        "position": list(guild.channels).index(name),
        "permission_overwrites": [],
        "parent_id": None,
        "topic": None,
        "nsfw": False,
        "last_message_id": None,
        "last_pin_timestamp": None,
        "rate_limit_per_user": 0,
        "default_thread_rate_limit_per_user": 0,
        "flags": 0,
    }


def _embed_errors(embed: Json) -> Json:
    """Per-field length errors of one embed."""
    errors: Json = {key: _too_long(limit) for key, limit in _EMBED_TEXT_LIMITS if len(embed.get(key) or "") > limit}
    for part, key, limit in _EMBED_PART_LIMITS:
        if len((embed.get(part) or {}).get(key) or "") > limit:
            errors[part] = {key: _too_long(limit)}
    fields = embed.get("fields") or []
    if len(fields) > _FIELDS_LIMIT:
        errors["fields"] = _too_long(_FIELDS_LIMIT)
        return errors
    for index, item in enumerate(fields):
        wrong = {key: _too_long(limit) for key, limit in _FIELD_LIMITS if len(item.get(key) or "") > limit}
        if wrong:
            errors.setdefault("fields", {})[str(index)] = wrong
    return errors


def _embed_size(embed: Json) -> int:
    """The characters that count towards the 6000 limit across a message's embeds."""
    texts = [embed.get("title"), embed.get("description")]
    texts += [(embed.get("footer") or {}).get("text"), (embed.get("author") or {}).get("name")]
    for item in embed.get("fields") or []:
        texts += [item.get("name"), item.get("value")]
    return sum(len(text or "") for text in texts)


def _message_errors(body: Json) -> Json:
    """The form errors of a message body's content and embeds, as the real API reports them."""
    errors: Json = {}
    if len(body.get("content") or "") > CONTENT_LIMIT:
        errors["content"] = _too_long(CONTENT_LIMIT)
    embeds = body.get("embeds") or []
    if len(embeds) > EMBEDS_LIMIT:
        errors["embeds"] = _too_long(EMBEDS_LIMIT)
        return errors
    wrong = {str(index): found for index, embed in enumerate(embeds) if (found := _embed_errors(embed))}
    if wrong:
        errors["embeds"] = wrong
    elif sum(map(_embed_size, embeds)) > EMBED_TOTAL_LIMIT:
        message = f"Embed size exceeds maximum size of {EMBED_TOTAL_LIMIT}"
        errors["embeds"] = _field_error("MAX_EMBED_SIZE_EXCEEDED", message)
    return errors


def _check_message(body: Json, files: list[SentFile], *, new: bool) -> web.Response | None:
    """The error answer for an invalid message body (new message or edit), else None."""
    errors = _message_errors(body)
    if errors:
        return _form_error(errors)
    if sum(len(f.data) for f in files) > ATTACHMENT_SIZE_LIMIT:
        return _error(413, 40005, "Request entity too large")
    if new and not (body.get("content") or body.get("embeds") or files or body.get("sticker_ids") or body.get("poll")):
        return _error(400, 50006, "Cannot send an empty message")
    return None


def _command_errors(commands: Any) -> Json | None:
    """Form errors of a bulk-overwrite body (a list of commands), else None."""
    if not isinstance(commands, list):
        return _field_error("LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
    errors: Json = {}
    for index, command in enumerate(commands):
        wrong: Json = {}
        if not _COMMAND_NAME.match(command.get("name") or "") or command["name"] != command["name"].lower():
            wrong["name"] = _field_error("APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if command.get("type", 1) == 1 and not 1 <= len(command.get("description") or "") <= 100:
            wrong["description"] = _field_error("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if len(command.get("options") or []) > 25:
            wrong["options"] = _too_long(25)
        if wrong:
            errors[str(index)] = wrong
    return errors or None


def _may_use(permissions: int, required: str | None) -> bool:
    """Whether a member may see a command with this default_member_permissions ("0": administrators only)."""
    if required is None or permissions & ADMINISTRATOR:
        return True
    needed = int(required)
    return needed != 0 and permissions & needed == needed


def _channel_of_path(path: str) -> int | None:
    """The channel id of a /channels/{id}... path."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "channels" and parts[2].isdigit():
        return int(parts[2])
    return None


async def _read_message_body(request: web.Request) -> tuple[Json, list[SentFile]]:
    """A message body, JSON or multipart (payload_json + files[n]), and its uploaded files."""
    if not request.content_type.startswith("multipart/"):
        return orjson.loads(await request.read() or b"{}"), []
    form = await request.post()
    body = orjson.loads(str(form.get("payload_json") or "{}"))
    files = []
    for name, value in form.items():
        if name.startswith("files[") and isinstance(value, web.FileField):
            content_type = mimetypes.guess_type(value.filename)[0] or value.content_type
            files.append(SentFile(0, value.filename, content_type, value.file.read()))
    return body, files


class FakeDiscord(LoopbackServer):
    """Fake Discord REST API v10 and gateway on one aiohttp server at 127.0.0.1 and a free port."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        guilds: list[FakeGuild] | None = None,
        heartbeat_interval: float = 41.25,
    ) -> None:
        super().__init__()
        self.token = token
        self.guilds = guilds if guilds is not None else [FakeGuild.default()]
        self.heartbeat_interval = heartbeat_interval
        self.application_id = APPLICATION_ID
        self.bot_user_id = BOT_USER_ID
        self.messages: list[SentMessage] = []
        self.interactions: dict[int, DispatchedInteraction] = {}
        self.commands: dict[int | None, list[Json]] = {}
        self.webhooks: dict[int, FakeWebhook] = {}
        self.rest_calls: list[RestCall] = []
        self.identifies: list[Json] = []
        self.gateway_queries: list[dict[str, str]] = []
        self.heartbeats = 0
        self.resumes = 0
        self._joined_at = _now_iso()
        self._sessions: dict[str, _Session] = {}
        self._sockets: list[_GatewaySocket] = []
        self._failures: list[_Failure] = []
        self._forbidden: set[int] = set()
        self._unknown: set[int] = set()
        self._outage = False
        self._changed = asyncio.Event()
        self._last_snowflake = 0

    @property
    def api_base(self) -> str:
        """The REST base, the value for discord.http.Route.BASE."""
        return self.url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """The gateway, ws://127.0.0.1:PORT/gateway."""
        return self.url.replace("http://", "ws://") + GATEWAY_PATH

    @property
    def guild(self) -> FakeGuild:
        """The first configured guild."""
        return self.guilds[0]

    @property
    def guild_id(self) -> int:
        """The first guild's id."""
        return self.guild.id

    @property
    def channel_id(self) -> int:
        """The first guild's first text channel."""
        return next(iter(self.guild.channels.values()))

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=8 * ATTACHMENT_SIZE_LIMIT)
        app.router.add_get(GATEWAY_PATH, self._handle_gateway)
        routes = [
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("GET", "/users/@me", self._get_me),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/applications/@me", self._get_application),
            ("GET", "/applications/{app_id}/commands", self._get_commands),
            ("PUT", "/applications/{app_id}/commands", self._put_commands),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self._get_commands),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self._put_commands),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("POST", "/channels/{channel_id}/messages", self._post_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._patch_message),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._post_callback),
            ("POST", "/webhooks/{webhook_id}/{token}", self._execute_webhook),
            ("GET", "/webhooks/{webhook_id}/{token}/messages/{message_id}", self._get_webhook_message),
            ("PATCH", "/webhooks/{webhook_id}/{token}/messages/{message_id}", self._patch_webhook_message),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, API_PREFIX + path, handler)
        return app

    async def stop_work(self) -> None:
        """Close gateway connections (1001 going away)."""
        for socket in list(self._sockets):
            await socket.ws.close(code=1001, message=b"server closing")

    # Test hooks: faults

    def fail_next(
        self, route: str, count: int = 1, status: int = 429, retry_after: float = 0.2, global_: bool = False
    ) -> None:
        """Fail the next count requests matching route: "POST", "/channels/1/messages" or "POST /channels/1"."""
        method, _, prefix = route.partition(" ")
        if method not in _METHODS:
            method, prefix = "", route
        self._failures.append(_Failure(method or None, prefix, count, status, retry_after, global_))

    def unknown_channel(self, channel_id: int) -> None:
        """Answer every request on this channel with 404 Unknown Channel (10003), as if it was deleted."""
        self._unknown.add(channel_id)

    def forbid(self, channel_id: int) -> None:
        """Answer every request on this channel with 403 Missing Permissions (50013)."""
        self._forbidden.add(channel_id)

    def restore_channel(self, channel_id: int) -> None:
        """Undo unknown_channel and forbid for this channel."""
        self._unknown.discard(channel_id)
        self._forbidden.discard(channel_id)

    def outage(self, down: bool) -> None:
        """While down, every REST request gets 503."""
        self._outage = down

    # Test hooks: configuration

    def add_webhook(self, channel_id: int, name: str = "Flowbot alerts") -> FakeWebhook:
        """Create an incoming webhook for a channel."""
        webhook = FakeWebhook(self._snowflake(), secrets.token_urlsafe(51), channel_id, name)
        self.webhooks[webhook.id] = webhook
        return webhook

    def commands_for(self, guild_id: int | None = None) -> list[Json]:
        """The synced commands: global ones, or those of a guild."""
        return self.commands.get(guild_id, [])

    # Test hooks: gateway

    async def dispatch(self, event: str, data: Json) -> None:
        """Send a DISPATCH event to every identified gateway connection."""
        sockets = [socket for socket in self._sockets if socket.session is not None]
        if not sockets:
            raise RuntimeError("no identified gateway connection")
        for socket in sockets:
            await socket.send(0, data, event)

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client closes and comes back with RESUME."""
        for socket in list(self._sockets):
            await socket.send(7, None)

    async def dispatch_interaction(
        self,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        user_id: int | None = None,
        guild_id: int | None = None,
        channel_id: int | None = None,
        focused: str | None = None,
    ) -> int:
        """Send INTERACTION_CREATE for a synced slash command ("name" or "group sub"); with focused, autocomplete.

        Like Discord, it refuses commands that are not synced, missing required options and users lacking the
        command's default_member_permissions (PermissionError). Returns the interaction id.
        """
        guild = self._guild(guild_id or self.guild_id)
        member = guild.member(user_id or next(m.id for m in guild.members if not m.bot))
        channel_id = channel_id or next(iter(guild.channels.values()))
        name, *path = command.split()
        definition = self._find_command(guild.id, name)
        permissions = guild.permissions_of(member)
        required = definition.get("default_member_permissions")
        if not _may_use(permissions, required):
            raise PermissionError(f"{member.name} lacks the permissions {required} of /{name}")
        resolved: Json = {}
        values = dict(options or {})
        if focused is not None:
            values.setdefault(focused, "")
        data: Json = {
            "id": definition["id"],
            "name": name,
            "type": 1,
            "options": self._options(guild, definition.get("options") or [], path, values, focused, resolved),
        }
        if definition.get("guild_id"):
            data["guild_id"] = definition["guild_id"]
        if resolved:
            data["resolved"] = resolved
        interaction = DispatchedInteraction(
            id=self._snowflake(),
            token="aW50ZXJhY3Rpb24" + secrets.token_urlsafe(120),
            kind=2 if focused is None else 4,
            guild_id=guild.id,
            channel_id=channel_id,
            user_id=member.id,
        )
        interaction.payload = self._interaction_json(interaction, guild, member, data)
        self.interactions[interaction.id] = interaction
        await self.dispatch("INTERACTION_CREATE", interaction.payload)
        return interaction.id

    # Test hooks: waiting

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once predicate() holds, re-checked on every recorded change; TimeoutError after timeout."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    async def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[SentMessage]:
        """The first count recorded channel messages, once there are that many."""
        await self.wait_until(lambda: len(self.messages) >= count, timeout)
        return self.messages[:count]

    async def wait_for_response(
        self, interaction_id: int, *, followups: int = 0, timeout: float = 5.0
    ) -> DispatchedInteraction:
        """The interaction once the client answered it (and sent at least that many follow-ups)."""
        interaction = self.interactions[interaction_id]
        await self.wait_until(lambda: interaction.answered and len(interaction.followups) >= followups, timeout)
        return interaction

    # Internals: state

    def _notify(self) -> None:
        """Wake every waiter: something was recorded."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _snowflake(self) -> int:
        """A fresh snowflake, increasing."""
        now = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last_snowflake = max(now, self._last_snowflake + 1)
        return self._last_snowflake

    def _guild(self, guild_id: int) -> FakeGuild:
        """The configured guild with this id."""
        for guild in self.guilds:
            if guild.id == guild_id:
                return guild
        raise LookupError(f"unknown guild {guild_id}")

    def _channel(self, channel_id: int) -> tuple[FakeGuild, str] | None:
        """The guild and name of a text channel."""
        for guild in self.guilds:
            for name, known in guild.channels.items():
                if known == channel_id:
                    return guild, name
        return None

    def _bot_member(self) -> FakeMember:
        """The bot as a member (name Flowbot) when a guild does not list it."""
        for guild in self.guilds:
            for member in guild.members:
                if member.id == self.bot_user_id:
                    return member
        return FakeMember(self.bot_user_id, "Flowbot", bot=True)

    def _bot_user(self) -> Json:
        """The bot's own user object (GET /users/@me, READY)."""
        return {
            **_user_json(self._bot_member()),
            "verified": True,
            "mfa_enabled": False,
            "email": None,
            "locale": "en-US",
            "premium_type": 0,
        }

    def _find_command(self, guild_id: int, name: str) -> Json:
        """A synced chat-input command visible in the guild."""
        for command in self.commands.get(guild_id, []) + self.commands.get(None, []):
            if command["name"] == name and command.get("type", 1) == 1:
                return command
        raise LookupError(f"/{name} is not synced (global or for guild {guild_id})")

    def _options(
        self,
        guild: FakeGuild,
        definitions: list[Json],
        path: list[str],
        values: dict[str, Any],
        focused: str | None,
        resolved: Json,
    ) -> list[Json]:
        """The interaction's options for the command definitions, walking subcommands along path."""
        by_name = {option["name"]: option for option in definitions}
        if path:
            sub = by_name.get(path[0])
            if sub is None or sub["type"] not in _SUBCOMMAND_TYPES:
                raise LookupError(f"no subcommand {path[0]!r}")
            inner = self._options(guild, sub.get("options") or [], path[1:], values, focused, resolved)
            return [{"name": sub["name"], "type": sub["type"], "options": inner}]
        missing = [name for name, option in by_name.items() if option.get("required") and name not in values]
        if missing and focused is None:
            raise ValueError(f"required options missing: {missing}")
        options = []
        for name, value in values.items():
            if name not in by_name:
                raise ValueError(f"unknown option {name!r}; the command has {sorted(by_name)}")
            kind = by_name[name]["type"]
            option: Json = {
                "name": name,
                "type": kind,
                "value": str(value) if kind in _SNOWFLAKE_OPTION_TYPES else value,
            }
            if name == focused:
                option["focused"] = True
            elif kind in _SNOWFLAKE_OPTION_TYPES:
                self._resolve(guild, kind, int(value), resolved)
            options.append(option)
        return options

    def _resolve(self, guild: FakeGuild, kind: int, snowflake: int, resolved: Json) -> None:
        """Add a channel (7) or user (6) option's object to the resolved data, as Discord does."""
        if kind == 7 and (found := self._channel(snowflake)):
            channel = _channel_json(found[0], found[1], snowflake)
            permissions = guild.permissions_of(self._bot_member())
            resolved.setdefault("channels", {})[str(snowflake)] = {**channel, "permissions": str(permissions)}
        elif kind == 6:
            member = guild.member(snowflake)
            resolved.setdefault("users", {})[str(snowflake)] = _user_json(member)
            partial = {k: v for k, v in _member_json(member, self._joined_at).items() if k != "user"}
            resolved.setdefault("members", {})[str(snowflake)] = {
                **partial,
                "permissions": str(guild.permissions_of(member)),
            }

    def _interaction_json(
        self, interaction: DispatchedInteraction, guild: FakeGuild, member: FakeMember, data: Json
    ) -> Json:
        """A complete INTERACTION_CREATE payload (discord.py needs every field it indexes)."""
        found = self._channel(interaction.channel_id)
        channel_name = found[1] if found else "unknown"
        permissions = guild.permissions_of(member)
        return {
            "id": str(interaction.id),
            "application_id": str(self.application_id),
            "type": interaction.kind,
            "token": interaction.token,
            "version": 1,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "guild_locale": "en-US",
            "channel_id": str(interaction.channel_id),
            "channel": {**_channel_json(guild, channel_name, interaction.channel_id), "permissions": str(permissions)},
            "member": {**_member_json(member, self._joined_at), "permissions": str(permissions)},
            "app_permissions": str(guild.permissions_of(self._bot_member())),
            "locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }

    def _guild_create(self, guild: FakeGuild, intents: int) -> Json:
        """A GUILD_CREATE payload; all members with the GUILD_MEMBERS intent, else only the bot, as Discord."""
        members = [m for m in guild.members if intents & GUILD_MEMBERS_INTENT or m.id == self.bot_user_id]
        roles = [_role_json(guild.id, "@everyone", guild.everyone_permissions, 0)]
        roles += [_role_json(role.id, role.name, role.permissions, role.position) for role in guild.roles]
        first_channel = str(next(iter(guild.channels.values()), guild.id))
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "application_id": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 1,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "features": [],
            "system_channel_id": first_channel,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "incidents_data": None,
            "joined_at": self._joined_at,
            "large": False,
            "unavailable": False,
            "lazy": True,
            "member_count": len(guild.members),
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "channels": [_channel_json(guild, name, cid) for name, cid in guild.channels.items()],
            "threads": [],
            "members": [_member_json(m, self._joined_at) for m in members],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _message_json(self, message: SentMessage) -> Json:
        """A full Message object."""
        attachments = [
            {
                "id": str(f.id),
                "filename": f.filename,
                "size": len(f.data),
                "url": f"https://cdn.discordapp.com/attachments/{message.channel_id}/{f.id}/{f.filename}",
                "proxy_url": f"https://media.discordapp.net/attachments/{message.channel_id}/{f.id}/{f.filename}",
                "content_type": f.content_type,
            }
            for f in message.files
        ]
        body: Json = {
            "id": str(message.id),
            "type": message.type,
            "channel_id": str(message.channel_id),
            "author": message.author,
            "content": message.content,
            "embeds": [{"type": "rich", **embed} for embed in message.embeds],
            "attachments": attachments,
            "timestamp": message.created_at,
            "edited_timestamp": message.edited_at,
            "tts": bool(message.body.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "flags": message.flags,
            "components": [],
        }
        if message.webhook_id is not None:
            body["webhook_id"] = str(message.webhook_id)
        if "nonce" in message.body:
            body["nonce"] = message.body["nonce"]
        return body

    def _new_message(
        self,
        channel_id: int,
        author: Json,
        body: Json,
        files: list[SentFile],
        *,
        webhook_id: int | None = None,
        type_: int = 0,
        flags: int = 0,
    ) -> SentMessage:
        """A stored message from a validated body."""
        for sent in files:
            sent.id = self._snowflake()
        return SentMessage(
            id=self._snowflake(),
            channel_id=channel_id,
            author=author,
            content=body.get("content") or "",
            embeds=list(body.get("embeds") or []),
            files=files,
            flags=(body.get("flags") or 0) | flags,
            body=body,
            type=type_,
            webhook_id=webhook_id,
        )

    def _edit(self, message: SentMessage, body: Json, files: list[SentFile]) -> web.Response:
        """Apply an edit as Discord does (given fields replace; attachments keeps the listed ones) and answer it."""
        invalid = _check_message(body, files, new=False)
        if invalid:
            return invalid
        for sent in files:
            sent.id = self._snowflake()
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        if "attachments" in body:
            kept = {int(item["id"]) for item in body["attachments"] or []}
            message.files = [f for f in message.files if f.id in kept]
        message.files += files
        if "flags" in body:
            message.flags = body["flags"] or 0
        message.flags &= ~LOADING
        message.edited_at = _now_iso()
        message.edits.append(body)
        self._notify()
        return _json_response(self._message_json(message))

    # Internals: REST

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        """Faults, authentication and the call log around the REST handlers; JSON bodies for unknown routes."""
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        path = request.path.removeprefix(API_PREFIX)
        response = self._fault(request, path)
        if response is None:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = _error(exc.status, 0, f"{exc.status}: {exc.reason}")
        self.rest_calls.append(RestCall(request.method, path, response.status))
        self._notify()
        return response

    def _fault(self, request: web.Request, path: str) -> web.Response | None:
        """The answer of an outage, a bad token, a queued failure or a channel fault, else None."""
        if self._outage:
            return _error(503, 0, "503: Service Unavailable")
        public = path.startswith(("/webhooks/", "/interactions/")) or path == "/gateway"
        if not public and request.headers.get("Authorization") != f"Bot {self.token}":
            return _error(401, 0, "401: Unauthorized")
        for failure in self._failures:
            if failure.matches(request.method, path):
                failure.count -= 1
                if failure.count <= 0:
                    self._failures.remove(failure)
                return failure.response()
        channel_id = _channel_of_path(path)
        if channel_id in self._unknown:
            return _error(404, 10003, "Unknown Channel")
        if channel_id in self._forbidden:
            return _error(403, 50013, "Missing Permissions")
        return None

    async def _get_gateway(self, request: web.Request) -> web.Response:
        """GET /gateway."""
        return _json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        """GET /gateway/bot: the gateway, one shard and a generous session start limit."""
        limit = {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}
        return _json_response({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _get_me(self, request: web.Request) -> web.Response:
        """GET /users/@me."""
        return _json_response(self._bot_user())

    async def _get_application(self, request: web.Request) -> web.Response:
        """GET /oauth2/applications/@me and /applications/@me (no interactions endpoint URL: gateway delivery)."""
        owner = _user_json(FakeMember(OWNER_ID, "owner"))
        return _json_response(
            {
                "id": str(self.application_id),
                "name": "Flowbot",
                "icon": None,
                "description": "Order-flow alerts",
                "summary": "",
                "type": None,
                "hook": True,
                "bot_public": False,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": APPLICATION_FLAGS,
                "owner": owner,
                "team": None,
                "bot": self._bot_user(),
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "role_connections_verification_url": None,
                "tags": [],
                "integration_types_config": {"0": {}},
                "approximate_guild_count": len(self.guilds),
            }
        )

    def _commands_scope(self, request: web.Request) -> int | web.Response | None:
        """The guild id of a commands route (None for global), or the error answer for a wrong app or guild."""
        if request.match_info["app_id"] != str(self.application_id):
            return _error(403, 50001, "Missing Access")
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return None
        if not any(str(guild.id) == guild_id for guild in self.guilds):
            return _error(403, 50001, "Missing Access")
        return int(guild_id)

    async def _get_commands(self, request: web.Request) -> web.Response:
        """GET .../commands."""
        scope = self._commands_scope(request)
        if isinstance(scope, web.Response):
            return scope
        return _json_response(self.commands.get(scope, []))

    async def _put_commands(self, request: web.Request) -> web.Response:
        """PUT .../commands: bulk overwrite; ids are kept for names already registered."""
        scope = self._commands_scope(request)
        if isinstance(scope, web.Response):
            return scope
        body = orjson.loads(await request.read())
        errors = _command_errors(body)
        if errors:
            return _form_error(errors)
        old_ids = {command["name"]: command["id"] for command in self.commands.get(scope, [])}
        stored = []
        for command in body:
            entry = {
                "type": 1,
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                "integration_types": [0],
                "contexts": None,
                "name_localizations": None,
                "description_localizations": None,
                **command,
                "id": old_ids.get(command["name"]) or str(self._snowflake()),
                "application_id": str(self.application_id),
                "version": str(self._snowflake()),
            }
            if entry["default_member_permissions"] is not None:  # discord.py sends an int; Discord answers a string
                entry["default_member_permissions"] = str(entry["default_member_permissions"])
            if scope is not None:
                entry["guild_id"] = str(scope)
            stored.append(entry)
        self.commands[scope] = stored
        return _json_response(stored)

    async def _get_channel(self, request: web.Request) -> web.Response:
        """GET /channels/{id}."""
        channel_id = int(request.match_info["channel_id"])
        found = self._channel(channel_id)
        if found is None:
            return _error(404, 10003, "Unknown Channel")
        return _json_response(_channel_json(found[0], found[1], channel_id))

    async def _post_message(self, request: web.Request) -> web.Response:
        """POST /channels/{id}/messages: validate, record, answer the Message."""
        channel_id = int(request.match_info["channel_id"])
        if self._channel(channel_id) is None:
            return _error(404, 10003, "Unknown Channel")
        body, files = await _read_message_body(request)
        invalid = _check_message(body, files, new=True)
        if invalid:
            return invalid
        message = self._new_message(channel_id, self._bot_user(), body, files)
        self.messages.append(message)
        self._notify()
        return _json_response(self._message_json(message))

    async def _patch_message(self, request: web.Request) -> web.Response:
        """PATCH /channels/{id}/messages/{mid}: only the bot's own messages in that channel."""
        channel_id = int(request.match_info["channel_id"])
        message_id = request.match_info["message_id"]
        message = next((m for m in self.messages if str(m.id) == message_id and m.channel_id == channel_id), None)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        if message.webhook_id is not None:
            return _error(403, 50005, "Cannot edit a message authored by another user")
        body, files = await _read_message_body(request)
        return self._edit(message, body, files)

    async def _post_callback(self, request: web.Request) -> web.Response:
        """POST /interactions/{id}/{token}/callback: record the first answer; a second is refused (40060)."""
        interaction = self.interactions.get(int(request.match_info["interaction_id"]))
        if interaction is None or interaction.token != request.match_info["token"]:
            return _error(404, 10062, "Unknown interaction")
        if interaction.answered:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        body, files = await _read_message_body(request)
        data = body.get("data") or {}
        kind = body.get("type")
        if kind == 4:
            invalid = _check_message(data, files, new=True)
            if invalid:
                return invalid
        interaction.type, interaction.data = kind, data
        if kind in (4, 5):
            interaction.original = self._new_message(
                interaction.channel_id,
                self._bot_user(),
                data,
                files,
                webhook_id=self.application_id,
                type_=20,
                flags=LOADING if kind == 5 else 0,
            )
        self._notify()
        if interaction.original is None:
            return web.Response(status=204)
        flags = interaction.original.flags
        summary = {
            "id": str(interaction.id),
            "type": interaction.kind,
            "response_message_id": str(interaction.original.id),
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(flags & EPHEMERAL),
        }
        resource = {"type": kind, "message": self._message_json(interaction.original)}
        return _json_response({"interaction": summary, "resource": resource})

    def _interaction_of(self, webhook_id: str, token: str) -> DispatchedInteraction | None:
        """The acknowledged interaction whose token this application webhook uses."""
        if webhook_id != str(self.application_id):
            return None
        for interaction in self.interactions.values():
            if interaction.token == token and interaction.answered:
                return interaction
        return None

    def _webhook_of(self, webhook_id: str, token: str) -> FakeWebhook | None:
        """The configured webhook with this id and token."""
        webhook = self.webhooks.get(int(webhook_id)) if webhook_id.isdigit() else None
        return webhook if webhook is not None and webhook.token == token else None

    async def _execute_webhook(self, request: web.Request) -> web.Response:
        """POST /webhooks/{id}/{token}: an interaction follow-up or an incoming webhook's message."""
        webhook_id, token = request.match_info["webhook_id"], request.match_info["token"]
        interaction = self._interaction_of(webhook_id, token)
        webhook = self._webhook_of(webhook_id, token)
        if interaction is None and webhook is None:
            return _error(404, 10015, "Unknown Webhook")
        body, files = await _read_message_body(request)
        invalid = _check_message(body, files, new=True)
        if invalid:
            return invalid
        if interaction is not None:
            message = self._new_message(
                interaction.channel_id, self._bot_user(), body, files, webhook_id=self.application_id, type_=20
            )
            interaction.followups.append(message)
        else:
            assert webhook is not None
            author = _user_json(FakeMember(webhook.id, body.get("username") or webhook.name, bot=True))
            message = self._new_message(webhook.channel_id, author, body, files, webhook_id=webhook.id)
            self.messages.append(message)
        self._notify()
        if request.query.get("wait", "false").lower() not in ("true", "1"):
            return web.Response(status=204)
        return _json_response(self._message_json(message))

    def _webhook_message(self, request: web.Request) -> SentMessage | web.Response:
        """The message a webhook message route names, or the error answer."""
        webhook_id, token = request.match_info["webhook_id"], request.match_info["token"]
        message_id = request.match_info["message_id"]
        interaction = self._interaction_of(webhook_id, token)
        if interaction is not None:
            if message_id == "@original":
                candidates = [interaction.original] if interaction.original else []
            else:
                candidates = [m for m in interaction.followups if str(m.id) == message_id]
        elif (webhook := self._webhook_of(webhook_id, token)) is not None:
            candidates = [m for m in self.messages if m.webhook_id == webhook.id and str(m.id) == message_id]
        else:
            return _error(404, 10015, "Unknown Webhook")
        return candidates[0] if candidates else _error(404, 10008, "Unknown Message")

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        """GET /webhooks/{id}/{token}/messages/{mid} (mid may be @original)."""
        message = self._webhook_message(request)
        return message if isinstance(message, web.Response) else _json_response(self._message_json(message))

    async def _patch_webhook_message(self, request: web.Request) -> web.Response:
        """PATCH /webhooks/{id}/{token}/messages/{mid} (mid may be @original)."""
        message = self._webhook_message(request)
        if isinstance(message, web.Response):
            return message
        body, files = await _read_message_body(request)
        return self._edit(message, body, files)

    # Internals: gateway

    async def _handle_gateway(self, request: web.Request) -> web.WebSocketResponse:
        """The gateway WebSocket: HELLO, then IDENTIFY or RESUME, heartbeats and member requests."""
        ws = web.WebSocketResponse(timeout=_CLOSE_TIMEOUT, max_msg_size=0)
        await ws.prepare(request)
        query = request.query
        self.gateway_queries.append(dict(query))
        compress = query.get("compress")
        if query.get("v") != "10":
            await ws.close(code=4012, message=b"Invalid API version")
            return ws
        if query.get("encoding", "json") != "json" or compress not in (None, "zlib-stream"):
            await ws.close(code=4002, message=b"Error while decoding payload.")
            return ws
        socket = _GatewaySocket(ws, compress == "zlib-stream")
        self._sockets.append(socket)
        try:
            await socket.send(10, {"heartbeat_interval": int(self.heartbeat_interval * 1000)})
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                if not await self._on_gateway_payload(socket, orjson.loads(msg.data)):
                    break
        finally:
            self._sockets.remove(socket)
            self._notify()
        return ws

    async def _on_gateway_payload(self, socket: _GatewaySocket, payload: Json) -> bool:
        """Handle one client payload; False once the connection was closed."""
        op, data = payload.get("op"), payload.get("d")
        if op == 1:
            self.heartbeats += 1
            await socket.send(11, None)
        elif op == 2:
            return await self._identify(socket, data)
        elif op == 6:
            await self._resume(socket, data)
        elif socket.session is None:
            await socket.ws.close(code=4003, message=b"Not authenticated.")
            return False
        elif op == 8:
            await self._send_members(socket, data)
        elif op not in (3, 4):  # presence and voice state updates are accepted silently
            await socket.ws.close(code=4001, message=b"Unknown opcode.")
            return False
        return True

    async def _identify(self, socket: _GatewaySocket, data: Json) -> bool:
        """IDENTIFY: check the token, then READY and one GUILD_CREATE per guild."""
        if socket.session is not None:
            await socket.ws.close(code=4005, message=b"Already authenticated.")
            return False
        if data.get("token") != self.token:
            await socket.ws.close(code=4004, message=b"Authentication failed.")
            return False
        self.identifies.append(data)
        session = _Session(secrets.token_hex(16), int(data.get("intents", 0)), data.get("shard"))
        self._sessions[session.id] = session
        socket.session = session
        ready: Json = {
            "v": 10,
            "user": self._bot_user(),
            "guilds": [{"id": str(guild.id), "unavailable": True} for guild in self.guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": APPLICATION_FLAGS},
            "user_settings": {},
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["rotterdam", "frankfurt"],
            "auth": {},
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        await socket.send(0, ready, "READY")
        for guild in self.guilds:
            await socket.send(0, self._guild_create(guild, session.intents), "GUILD_CREATE")
        self._notify()
        return True

    async def _resume(self, socket: _GatewaySocket, data: Json) -> None:
        """RESUME: RESUMED for a known session and the right token, else INVALID_SESSION (not resumable)."""
        session = self._sessions.get(data.get("session_id", ""))
        if session is None or data.get("token") != self.token:
            await socket.send(9, False)
            return
        socket.session = session
        self.resumes += 1
        await socket.send(0, {}, "RESUMED")
        self._notify()

    async def _send_members(self, socket: _GatewaySocket, data: Json) -> None:
        """REQUEST_GUILD_MEMBERS: one GUILD_MEMBERS_CHUNK per requested guild with all its members."""
        requested = data.get("guild_id")
        for guild_id in requested if isinstance(requested, list) else [requested]:
            guild = self._guild(int(guild_id))
            chunk = {
                "guild_id": str(guild.id),
                "members": [_member_json(member, self._joined_at) for member in guild.members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
                "nonce": data.get("nonce"),
            }
            await socket.send(0, chunk, "GUILD_MEMBERS_CHUNK")
