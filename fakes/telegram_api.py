"""Fake Telegram Bot API server for python-telegram-bot's real Bot and Application, over a real socket.

Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url) sends every call to
POST /bot<TOKEN>/<method> (form-encoded, or multipart when uploading; JSON bodies are accepted too);
uploaded files are served at GET /file/bot<TOKEN>/<file_path> as returned by getFile.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from fakes.loopback import LoopbackServer

DEFAULT_TOKEN = "123456789:AAFakeTelegramTokenForFlowbotTests0000"
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes
DEFAULT_USER_ID = 1001  # sender of pushed group messages unless one is given
# Form fields kept as sent; every other form field is JSON-decoded when it parses (PTB JSON-encodes non-strings)
_STRING_FIELDS = frozenset(
    {"text", "caption", "parse_mode", "callback_query_id", "action", "url", "secret_token", "file_id", "photo"}
)
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"RIFF")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)

Json = dict[str, Any]
Files = dict[str, bytes]


class ApiError(Exception):
    """A Bot API error answer: HTTP status, description and optional response parameters."""

    def __init__(self, status: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def bad_request(reason: str) -> ApiError:
    """A 400 with the API's "Bad Request: ..." description."""
    return ApiError(400, f"Bad Request: {reason}")


def fault(status: int, retry_after: int = 1) -> ApiError:
    """The error Telegram answers for an injected fault status (429 carries retry_after)."""
    if status == 429:
        return ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
    return ApiError(status, HTTPStatus(status).phrase)


@dataclass
class ApiCall:
    """One request as received: canonical method name (or the raw path part), decoded params, arrival time."""

    method: str
    params: Json
    at: float
    status: int = 0  # HTTP status answered; 0 while in flight


@dataclass
class SentMessage:
    """A message the bot sent (sendMessage or sendPhoto); text and caption are the source as sent."""

    chat_id: int
    message_id: int
    thread_id: int | None
    text: str | None
    caption: str | None
    parse_mode: str | None
    reply_markup: Json | None
    photo: bytes | None
    link_preview_disabled: bool
    message: Json  # the Message object as answered (plain text with entities), not changed by later edits


@dataclass
class Edit:
    """An accepted editMessageText or editMessageCaption."""

    method: str
    chat_id: int
    message_id: int
    text: str | None
    caption: str | None
    parse_mode: str | None
    reply_markup: Json | None


@dataclass
class CallbackAnswer:
    """An accepted answerCallbackQuery."""

    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None


@dataclass
class _OpenTag:
    """A start tag waiting for its end tag while parsing HTML."""

    name: str
    offset: int  # UTF-16 offset in the plain text
    attrs: dict[str, str]
    language: str = ""


_TAG_HEAD = re.compile(r"<(/?)([a-zA-Z0-9-]*)")
_END_TAIL = re.compile(r"\s*>")
_START_TAIL = re.compile(r"((?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?)*)\s*/?>")
_ATTR = re.compile(r"([a-zA-Z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+)))?")
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
}


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _decode_entity(match: re.Match[str]) -> str:
    """The character an HTML entity stands for."""
    named, decimal, hexadecimal = match.groups()
    return _NAMED[named] if named else chr(int(decimal) if decimal else int(hexadecimal, 16))


def _closed_entity(tag: _OpenTag, end: int, parent: _OpenTag | None) -> Json | None:
    """The entity of a closed tag, or None (empty, link without href, code merged into its pre)."""
    if end == tag.offset:
        return None
    kind = _HTML_TYPES[tag.name]
    entity: Json = {"type": kind, "offset": tag.offset, "length": end - tag.offset}
    css = tag.attrs.get("class", "")
    if kind == "code" and parent is not None and parent.name == "pre" and css.startswith("language-"):
        parent.language = css.removeprefix("language-")
        return None
    if kind == "text_link":
        if not tag.attrs.get("href"):
            return None
        entity["url"] = tag.attrs["href"]
    if kind == "pre" and tag.language:
        entity["language"] = tag.language
    if kind == "blockquote" and "expandable" in tag.attrs:
        entity["type"] = "expandable_blockquote"
    return entity


def parse_html(source: str) -> tuple[str, list[Json]]:
    """Plain text and entities of Telegram-flavoured HTML; ValueError with Telegram's reason if it does not parse."""
    parts: list[str] = []
    length = 0
    open_tags: list[_OpenTag] = []
    entities: list[Json] = []
    i = 0
    while i < len(source):
        char = source[i]
        if char == "&" and (entity := _ENTITY.match(source, i)):
            parts.append(decoded := _decode_entity(entity))
            length += utf16_len(decoded)
            i = entity.end()
            continue
        if char != "<":
            parts.append(char)
            length += utf16_len(char)
            i += 1
            continue
        at = len(source[:i].encode())
        head = _TAG_HEAD.match(source, i)
        assert head is not None
        name = head.group(2).lower()
        if head.group(1):
            if not (tail := _END_TAIL.match(source, head.end())):
                raise ValueError(f"Unclosed end tag at byte offset {at}")
            if not open_tags:
                raise ValueError(f"Unexpected end tag at byte offset {at}")
            tag = open_tags.pop()
            if tag.name != name:
                raise ValueError(f'Unmatched end tag at byte offset {at}, expected "</{tag.name}>", found "</{name}>"')
            if closed := _closed_entity(tag, length, open_tags[-1] if open_tags else None):
                entities.append(closed)
        else:
            if name not in _HTML_TYPES:
                raise ValueError(f'Unsupported start tag "{name}" at byte offset {at}')
            if not (tail := _START_TAIL.match(source, head.end())):
                raise ValueError(f"Unclosed start tag at byte offset {at}")
            attrs = {
                key.lower(): _ENTITY.sub(_decode_entity, "".join(values))
                for key, *values in _ATTR.findall(tail.group(1))
            }
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise ValueError(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
            open_tags.append(_OpenTag(name, length, attrs))
        i = tail.end()
    if open_tags:
        raise ValueError(f'Can\'t find end tag corresponding to start tag "{open_tags[-1].name}"')
    return "".join(parts), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def render(source: str, parse_mode: str | None) -> tuple[str, list[Json]]:
    """Plain text and entities as Telegram stores them; only HTML is parsed, Markdown modes are kept as sent."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        try:
            return parse_html(source)
        except ValueError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
    if mode not in ("", "markdown", "markdownv2"):
        raise bad_request("unsupported parse_mode")
    return source, []


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG header; (0, 0) for other formats."""
    if data.startswith(_IMAGE_MAGIC[0]) and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    return 0, 0


def _decode_field(name: str, value: str) -> Any:
    """A form field as the API reads it: string fields as sent, others JSON-decoded when they parse."""
    if name in _STRING_FIELDS:
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


async def read_params(request: web.Request) -> tuple[Json, Files]:
    """The call's parameters (query string, then form, multipart or JSON body) and its uploaded files."""
    fields: dict[str, str] = dict(request.query)
    files: Files = {}
    params: Json = {}
    if request.content_type == "application/json":
        body = await request.read()
        try:
            decoded = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            raise bad_request("can't parse JSON encoded request") from None
        if not isinstance(decoded, dict):
            raise bad_request("can't parse JSON encoded request")
        params = decoded
    elif request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is None:
                fields[part.name] = await part.text()
            else:
                files[part.name] = bytes(await part.read(decode=False))
    elif request.can_read_body:
        fields.update({key: str(value) for key, value in (await request.post()).items()})
    return {**{key: _decode_field(key, value) for key, value in fields.items()}, **params}, files


def _json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error_response(error: ApiError) -> web.Response:
    """A Bot API error body: ok false, error_code, description and parameters if any."""
    body: Json = {"ok": False, "error_code": error.status, "description": error.description}
    if error.parameters:
        body["parameters"] = error.parameters
    return _json_response(body, error.status)


def _int_param(params: Json, key: str) -> int:
    """A required integer parameter."""
    value = params.get(key)
    if value is None or value == "":
        raise bad_request(f"{key} is empty")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad_request(f'field "{key}" must be of type Integer')
    try:
        return int(value)
    except ValueError:
        raise bad_request("chat not found" if key == "chat_id" else f"invalid {key} specified") from None


def _optional_int(params: Json, key: str) -> int | None:
    """An optional integer parameter."""
    return None if params.get(key) in (None, "") else _int_param(params, key)


def _check_inline_keyboard(markup: Any) -> None:
    """Reject markup Telegram rejects: not an object, a button without text, or callback_data over 64 bytes."""
    if markup is None:
        return
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard", []):
        for button in row:
            if not button.get("text"):
                raise bad_request("BUTTON_TEXT_EMPTY")
            if len(str(button.get("callback_data", "")).encode()) > MAX_CALLBACK_DATA:
                raise bad_request("BUTTON_DATA_INVALID")


def _preview_disabled(params: Json) -> bool:
    """True if link previews were switched off, by either the old or the new parameter."""
    options = params.get("link_preview_options")
    return bool(params.get("disable_web_page_preview")) or (
        isinstance(options, dict) and bool(options.get("is_disabled"))
    )


class FakeTelegram(LoopbackServer):
    """Telegram Bot API on 127.0.0.1 at a free port: records calls and sent messages, queues pushed updates."""

    cancel_abandoned_handlers = True  # a client that gives up (timeout) cancels its delayed answer

    def __init__(self, token: str = DEFAULT_TOKEN, *, username: str = "flowbot_test_bot", delay: float = 0.0) -> None:
        super().__init__()
        self.token = token
        self.delay = delay
        self.max_poll_wait = 0.1  # seconds getUpdates waits for an update, whatever timeout the client asked
        self.bot_user: Json = {
            "id": int(token.partition(":")[0]) if token.partition(":")[0].isdigit() else 1,
            "is_bot": True,
            "first_name": "Flowbot",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.requests: list[ApiCall] = []
        self.sent: list[SentMessage] = []
        self.edits: list[Edit] = []
        self.deleted: list[tuple[int, int]] = []
        self.callback_answers: list[CallbackAnswer] = []
        self.chat_actions: list[tuple[int, str, int | None]] = []
        self.webhook_url = ""
        self._commands: dict[tuple[bytes, str], list[Json]] = {}
        self._updates: deque[Json] = deque()
        self._last_update_id = 0
        self._open_queries: set[str] = set()
        self._chats: dict[int, Json] = {}
        self._message_ids: defaultdict[int, int] = defaultdict(int)
        self._messages: dict[tuple[int, int], Json] = {}
        self._files: Files = {}
        self._faults: defaultdict[str, deque[ApiError]] = defaultdict(deque)
        self._blocked: set[int] = set()
        self._outage = False
        self._changed = asyncio.Event()
        self._methods: dict[str, tuple[str, Callable[[Json, Files], Awaitable[Any]]]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "deleteWebhook": self._delete_webhook,
                "setWebhook": self._set_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "getUpdates": self._get_updates,
                "sendMessage": self._send_message,
                "sendPhoto": self._send_photo,
                "editMessageText": self._edit_message_text,
                "editMessageCaption": self._edit_message_caption,
                "deleteMessage": self._delete_message,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
                "getChat": self._get_chat,
                "getFile": self._get_file,
            }.items()
        }

    @property
    def base_url(self) -> str:
        """base_url for telegram.Bot / ApplicationBuilder (PTB appends the token)."""
        return self.url + "/bot"

    @property
    def base_file_url(self) -> str:
        """base_file_url for telegram.Bot / ApplicationBuilder (PTB appends the token)."""
        return self.url + "/file/bot"

    @property
    def commands(self) -> list[Json]:
        """The commands set for the default scope and no language."""
        return self.commands_for()

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle_call)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        return app

    def commands_for(self, scope: Json | None = None, language_code: str = "") -> list[Json]:
        """The commands set for a scope (a BotCommandScope dict, default scope if None) and language."""
        return self._commands.get(self._scope_key(scope, language_code), [])

    def calls(self, method: str) -> list[Json]:
        """The params of every call of a method, in order."""
        name = self._known(method)
        return [call.params for call in self.requests if call.method == name]

    def message(self, chat_id: int, message_id: int) -> Json | None:
        """The current state of a message (after edits), None if unknown or deleted."""
        return self._messages.get((chat_id, message_id))

    def push_message(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: str = "private",
        thread_id: int | None = None,
        first_name: str = "Tester",
    ) -> int:
        """Queue a Message update from a user (bot_command entity for /commands); returns its update_id."""
        if chat_type not in ("private", "group", "supergroup"):
            raise ValueError(f"unknown chat_type {chat_type!r}")
        if (chat_type == "private") != (chat_id > 0):
            raise ValueError("private chats have positive ids, groups negative ones")
        sender = user_id if user_id is not None else chat_id if chat_type == "private" else DEFAULT_USER_ID
        user = {"id": sender, "is_bot": False, "first_name": first_name}
        chat: Json = {"id": chat_id, "type": chat_type}
        chat.update({"first_name": first_name} if chat_type == "private" else {"title": f"Group {chat_id}"})
        if chat_type == "supergroup" and thread_id is not None:
            chat["is_forum"] = True
        self._chats[chat_id] = chat
        message = self._new_message(chat_id, thread_id, user)
        message["text"] = text
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(text.split()[0])}]
        return self._push_update({"message": message})

    def push_callback(self, chat_id: int, user_id: int, data: str, message_id: int) -> int:
        """Queue a callback_query update (its id is str(update_id)) for a button of a message; returns the update_id."""
        message = self._messages.get((chat_id, message_id)) or {
            "chat": self._chat(chat_id),
            "message_id": message_id,
            "date": 0,  # an inaccessible message, as Telegram sends for messages it no longer has
        }
        update_id = self._last_update_id + 1
        query_id = str(update_id)
        self._open_queries.add(query_id)
        query = {
            "id": query_id,
            "from": {"id": user_id, "is_bot": False, "first_name": "Tester"},
            "chat_instance": str(chat_id),
            "message": message,
            "data": data,
        }
        return self._push_update({"callback_query": query})

    def fail_next(self, method: str, count: int = 1, status: int = 429, retry_after: int = 1) -> None:
        """Answer the next count calls of a method with an error status (429 with retry_after); nothing is done."""
        self._faults[self._known(method)].extend(fault(status, retry_after) for _ in range(count))

    def block(self, chat_id: int) -> None:
        """Make sends to the chat answer 403 "Forbidden: bot was blocked by the user"."""
        self._blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        """Undo block()."""
        self._blocked.discard(chat_id)

    def outage(self, on: bool = True) -> None:
        """While on, every call answers 502 Bad Gateway."""
        self._outage = on

    async def wait_until(self, predicate: Callable[[], object], timeout: float = 5.0) -> None:
        """Return once predicate() is true, re-checked after every request and pushed update; else TimeoutError."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    async def wait_for_sent(self, count: int, timeout: float = 5.0) -> list[SentMessage]:
        """The first count sent messages, once sent; TimeoutError saying how many came if they do not."""
        try:
            await self.wait_until(lambda: len(self.sent) >= count, timeout)
        except TimeoutError:
            raise TimeoutError(f"{len(self.sent)} of {count} messages sent within {timeout}s") from None
        return self.sent[:count]

    def _known(self, method: str) -> str:
        """The canonical name of a served method, checked."""
        entry = self._methods.get(method.lower())
        if entry is None:
            raise ValueError(f"method {method!r} is not served by FakeTelegram")
        return entry[0]

    def _notify(self) -> None:
        """Wake every waiter to re-check its condition."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _push_update(self, content: Json) -> int:
        """Queue an update with the next update_id."""
        self._last_update_id += 1
        self._updates.append({"update_id": self._last_update_id, **content})
        self._notify()
        return self._last_update_id

    @staticmethod
    def _scope_key(scope: Json | None, language_code: str) -> tuple[bytes, str]:
        """The key commands are stored under."""
        return orjson.dumps(scope or {"type": "default"}, option=orjson.OPT_SORT_KEYS), language_code

    def _chat(self, chat_id: int) -> Json:
        """The chat seen before, else one guessed from the id's sign and size."""
        if chat_id in self._chats:
            return self._chats[chat_id]
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "Tester"}
        chat_type = "supergroup" if chat_id <= -1_000_000_000_000 else "group"
        return {"id": chat_id, "type": chat_type, "title": f"Group {chat_id}"}

    def _new_message(self, chat_id: int, thread_id: int | None, sender: Json) -> Json:
        """A stored message with the chat's next id, the current date and the sender."""
        self._message_ids[chat_id] += 1
        message: Json = {
            "message_id": self._message_ids[chat_id],
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": sender,
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        self._messages[chat_id, message["message_id"]] = message
        return message

    def _bot_message(self, params: Json) -> Json:
        """The stored bot message a call edits."""
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        key = (_int_param(params, "chat_id"), _int_param(params, "message_id"))
        message = self._messages.get(key)
        if message is None:
            raise bad_request("message to edit not found")
        if message["from"]["id"] != self.bot_user["id"]:
            raise bad_request("message can't be edited")
        return message

    def _check_sendable(self, chat_id: int) -> None:
        """A blocked chat refuses sends."""
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    async def _handle_call(self, request: web.Request) -> web.Response:
        """POST /bot<token>/<method>: record, then answer; close() can cancel a delayed answer."""
        call = ApiCall(request.match_info["method"], {}, time.monotonic())
        self.requests.append(call)
        with self.answering():
            try:
                response = await self._answer(request, call)
            except ApiError as exc:
                response = _error_response(exc)
        call.status = response.status
        self._notify()
        return response

    async def _answer(self, request: web.Request, call: ApiCall) -> web.Response:
        """The response to one call, or ApiError."""
        if request.match_info["token"] != self.token:
            raise ApiError(401, "Unauthorized")
        entry = self._methods.get(call.method.lower())
        if entry is None:
            raise ApiError(404, "Not Found")
        call.method, handler = entry
        params, files = await read_params(request)
        call.params = params
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._outage:
            raise fault(502)
        if self._faults[call.method]:
            raise self._faults[call.method].popleft()
        return _json_response({"ok": True, "result": await handler(params, files)})

    async def _handle_file(self, request: web.Request) -> web.Response:
        """GET /file/bot<token>/<file_path>: the bytes of an uploaded file."""
        if request.match_info["token"] != self.token:
            return _error_response(ApiError(401, "Unauthorized"))
        file_id = request.match_info["path"].removeprefix("photos/").removesuffix(".jpg")
        if file_id not in self._files:
            return _error_response(ApiError(404, "Not Found"))
        return web.Response(body=self._files[file_id], content_type="application/octet-stream")

    async def _get_me(self, params: Json, files: Files) -> Json:
        return self.bot_user

    async def _set_webhook(self, params: Json, files: Files) -> bool:
        url = str(params.get("url") or "")
        if url and not url.startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook_url = url
        return True

    async def _delete_webhook(self, params: Json, files: Files) -> bool:
        self.webhook_url = ""
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: Json, files: Files) -> Json:
        return {"url": self.webhook_url, "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    async def _get_updates(self, params: Json, files: Files) -> list[Json]:
        """Confirm updates below offset, then answer the pending ones, waiting at most max_poll_wait for one."""
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _optional_int(params, "offset") or 0
        while self._updates and self._updates[0]["update_id"] < offset:
            self._updates.popleft()
        wait = min(float(params.get("timeout") or 0), self.max_poll_wait)
        if not self._updates and wait > 0:
            with contextlib.suppress(TimeoutError):
                await self.wait_until(lambda: self._updates, wait)
        limit = _optional_int(params, "limit") or 100
        return list(self._updates)[: max(1, min(limit, 100))]

    async def _send_message(self, params: Json, files: Files) -> Json:
        chat_id = _int_param(params, "chat_id")
        self._check_sendable(chat_id)
        source = str(params.get("text") or "")
        text, entities = render(source, params.get("parse_mode"))
        if not text.strip():
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT:
            raise bad_request("message is too long")
        markup = params.get("reply_markup")
        _check_inline_keyboard(markup)
        message = self._new_message(chat_id, _optional_int(params, "message_thread_id"), self.bot_user)
        message["text"] = text
        if entities:
            message["entities"] = entities
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        if isinstance(params.get("link_preview_options"), dict):
            message["link_preview_options"] = params["link_preview_options"]
        self.sent.append(self._record_sent(params, message, text=source, photo=None))
        return message

    async def _send_photo(self, params: Json, files: Files) -> Json:
        chat_id = _int_param(params, "chat_id")
        self._check_sendable(chat_id)
        source = params.get("caption")
        caption, entities = render(str(source or ""), params.get("parse_mode"))
        if len(caption) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        markup = params.get("reply_markup")
        _check_inline_keyboard(markup)
        photo, file_id = self._photo(params, files)
        message = self._new_message(chat_id, _optional_int(params, "message_thread_id"), self.bot_user)
        width, height = _png_size(photo or b"")
        size = {"file_id": file_id, "file_unique_id": f"u{file_id}", "width": width, "height": height}
        message["photo"] = [{**size, "file_size": len(photo or b"")}]
        if caption:
            message["caption"] = caption
        if entities:
            message["caption_entities"] = entities
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        self.sent.append(self._record_sent(params, message, caption=source, photo=photo))
        return message

    def _photo(self, params: Json, files: Files) -> tuple[bytes | None, str]:
        """The photo's bytes (None for a URL) and file_id: an upload, an attach:// upload, a known file_id or URL."""
        value = params.get("photo")
        name = value.removeprefix("attach://") if isinstance(value, str) and value.startswith("attach://") else "photo"
        if name in files:
            data = files[name]
            if not data:
                raise bad_request("file must be non-empty")
            if not data.startswith(_IMAGE_MAGIC):
                raise bad_request("IMAGE_PROCESS_FAILED")
            file_id = f"photo{len(self._files) + 1}"
            self._files[file_id] = data
            return data, file_id
        if isinstance(value, str) and value in self._files:
            return self._files[value], value
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return None, f"url{len(self.sent) + 1}"
        raise bad_request("wrong file identifier/HTTP URL specified")

    def _record_sent(
        self, params: Json, message: Json, *, photo: bytes | None, text: str | None = None, caption: str | None = None
    ) -> SentMessage:
        """The record of a message just sent."""
        markup = params.get("reply_markup")
        return SentMessage(
            chat_id=message["chat"]["id"],
            message_id=message["message_id"],
            thread_id=message.get("message_thread_id"),
            text=text,
            caption=caption,
            parse_mode=params.get("parse_mode"),
            reply_markup=markup if isinstance(markup, dict) else None,
            photo=photo,
            link_preview_disabled=_preview_disabled(params),
            message=dict(message),
        )

    async def _edit_message_text(self, params: Json, files: Files) -> Json:
        message = self._bot_message(params)
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        source = str(params.get("text") or "")
        text, entities = render(source, params.get("parse_mode"))
        if not text.strip():
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT:
            raise bad_request("MESSAGE_TOO_LONG")
        self._apply_edit(message, params, {"text": text, "entities": entities})
        self.edits.append(self._record_edit("editMessageText", params, message, text=source))
        return message

    async def _edit_message_caption(self, params: Json, files: Files) -> Json:
        message = self._bot_message(params)
        if "photo" not in message:
            raise bad_request("there is no caption in the message to edit")
        source = params.get("caption")
        caption, entities = render(str(source or ""), params.get("parse_mode"))
        if len(caption) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        self._apply_edit(message, params, {"caption": caption, "caption_entities": entities})
        self.edits.append(self._record_edit("editMessageCaption", params, message, caption=source))
        return message

    @staticmethod
    def _apply_edit(message: Json, params: Json, content: Json) -> None:
        """Replace content and inline keyboard (dropped when absent, as Telegram does); refuse a no-op."""
        markup = params.get("reply_markup")
        _check_inline_keyboard(markup)
        inline = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        new = {key: value for key, value in content.items() if value} | ({"reply_markup": inline} if inline else {})
        keys = (*content, "reply_markup")
        if {key: message[key] for key in keys if key in message} == new:
            raise bad_request(_NOT_MODIFIED)
        for key in keys:
            message.pop(key, None)
        message.update(new, edit_date=int(time.time()))

    @staticmethod
    def _record_edit(
        method: str, params: Json, message: Json, *, text: str | None = None, caption: str | None = None
    ) -> Edit:
        """The record of an accepted edit."""
        markup = params.get("reply_markup")
        return Edit(
            method=method,
            chat_id=message["chat"]["id"],
            message_id=message["message_id"],
            text=text,
            caption=caption,
            parse_mode=params.get("parse_mode"),
            reply_markup=markup if isinstance(markup, dict) else None,
        )

    async def _delete_message(self, params: Json, files: Files) -> bool:
        key = (_int_param(params, "chat_id"), _int_param(params, "message_id"))
        if self._messages.pop(key, None) is None:
            raise bad_request("message to delete not found")
        self.deleted.append(key)
        return True

    async def _set_my_commands(self, params: Json, files: Files) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request('parameter "commands" must be an Array')
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("can't parse BotCommand")
            if not _COMMAND.fullmatch(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not str(command.get("description", "")).strip():
                raise bad_request("command description is empty")
        key = self._scope_key(params.get("scope"), str(params.get("language_code") or ""))
        self._commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
        return True

    async def _get_my_commands(self, params: Json, files: Files) -> list[Json]:
        return self.commands_for(params.get("scope"), str(params.get("language_code") or ""))

    async def _answer_callback_query(self, params: Json, files: Files) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._open_queries:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        self._open_queries.discard(query_id)
        answer = CallbackAnswer(query_id, params.get("text"), bool(params.get("show_alert")), params.get("url"))
        self.callback_answers.append(answer)
        return True

    async def _send_chat_action(self, params: Json, files: Files) -> bool:
        chat_id = _int_param(params, "chat_id")
        self._check_sendable(chat_id)
        action = str(params.get("action") or "")
        if action not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.chat_actions.append((chat_id, action, _optional_int(params, "message_thread_id")))
        return True

    async def _get_chat(self, params: Json, files: Files) -> Json:
        gifts = dict.fromkeys(
            ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription", "gifts_from_channels"), False
        )
        chat = self._chat(_int_param(params, "chat_id"))
        return {**chat, "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": gifts}

    async def _get_file(self, params: Json, files: Files) -> Json:
        file_id = str(params.get("file_id") or "")
        if file_id not in self._files:
            raise bad_request("invalid file_id")
        path = f"photos/{file_id}.jpg"
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(self._files[file_id]),
            "file_path": path,
        }
