"""Messages in Telegram's HTML parse mode, within its length limits, with inline keyboards."""

from __future__ import annotations

from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.models import Message

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024


def to_html(message: Message) -> str:
    """The title in bold, the body as it is; every character of both escaped."""
    title = f"<b>{escape(message.title, quote=False)}</b>"
    return f"{title}\n{escape(message.body, quote=False)}" if message.body else title


def split_html(message: Message, limit: int = TEXT_LIMIT) -> list[str]:
    """The message as one or more texts of at most `limit` characters, split between lines where possible."""
    first = f"<b>{escape(message.title[:limit - 10], quote=False)}</b>"
    parts: list[str] = []
    current = first
    for line in message.body.splitlines() if message.body else []:
        piece = escape(line, quote=False)
        while len(piece) > limit:  # one line longer than a message: cut it (at an escape boundary)
            cut = limit
            amp = piece.rfind("&", max(0, cut - 6), cut)
            if amp != -1 and ";" not in piece[amp:cut]:
                cut = amp
            if current:
                parts.append(current)
            current = ""
            parts.append(piece[:cut])
            piece = piece[cut:]
        candidate = f"{current}\n{piece}" if current else piece
        if len(candidate) > limit:
            parts.append(current)
            current = piece or " "
        else:
            current = candidate
    parts.append(current)
    return [part for part in parts if part.strip()]


def caption(message: Message) -> str:
    """A photo's caption: the title in bold and as much of the body as fits."""
    text = to_html(message)
    if len(text) <= CAPTION_LIMIT:
        return text
    return split_html(message, CAPTION_LIMIT)[0]


def keyboard(message: Message) -> InlineKeyboardMarkup | None:
    if not message.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in message.buttons]
    )
