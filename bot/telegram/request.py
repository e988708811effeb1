"""python-telegram-bot's networking backend on aiohttp (PTB's documented BaseRequest extension point).

PTB's default backend, httpx, costs about 2 ms of CPU per Bot API call on these machines, aiohttp under 1 ms:
at Telegram's 30 messages per second that difference is CPU the engine's ingestion keeps, in the same process.
"""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from telegram._utils.types import JSONDict
from telegram.error import NetworkError, TelegramError, TimedOut
from telegram.request import BaseRequest, RequestData

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_POOL_TIMEOUT_S = 1.0
JSON = {"Content-Type": "application/json"}


def _seconds(value: object, default: float | None) -> float | None:
    """A PTB timeout argument: DEFAULT_NONE means the default, None means no limit."""
    return default if value is BaseRequest.DEFAULT_NONE else value  # type: ignore[return-value]


def _body(data: RequestData | None) -> tuple[aiohttp.FormData | bytes | None, dict[str, str] | None]:
    """The request body and its headers: a JSON object (the Bot API takes one for every method; cheaper to make
    than a URL-encoded form), or a multipart form when the request uploads files."""
    if data is None:
        return None, None
    files = data.multipart_data
    if not files:
        return orjson.dumps(data.parameters), JSON
    form = aiohttp.FormData()
    for name, value in data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in files.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form, None


class AiohttpRequest(BaseRequest):
    """One aiohttp session with a bounded connection pool; errors become PTB's TimedOut and NetworkError."""

    def __init__(
        self,
        pool_size: int = 8,
        read_timeout: float | None = DEFAULT_TIMEOUT_S,
        write_timeout: float | None = DEFAULT_TIMEOUT_S,
        connect_timeout: float | None = DEFAULT_TIMEOUT_S,
        pool_timeout: float | None = DEFAULT_POOL_TIMEOUT_S,
    ) -> None:
        self.pool_size = pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    @staticmethod
    def parse_json_payload(payload: bytes) -> JSONDict:
        """The Bot API's JSON; a body that is not JSON (a proxy's or a wrong path's HTML page) raises PTB's
        TelegramError without the logged traceback PTB's own parser adds (the status still decides the error)."""
        try:
            result: JSONDict = orjson.loads(payload)
            return result
        except orjson.JSONDecodeError:
            raise TelegramError("Invalid server response: not JSON") from None

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.pool_size), headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized")
        read = _seconds(read_timeout, self._read_timeout)
        write = _seconds(write_timeout, self._write_timeout)
        connect = _seconds(connect_timeout, self._connect_timeout)
        pool = _seconds(pool_timeout, self._pool_timeout)
        parts = (read, write, connect, pool)
        overall = None if any(part is None for part in parts) else sum(parts)  # type: ignore[arg-type]
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect, sock_read=read,
            connect=None if connect is None or pool is None else connect + pool,
        )
        body, headers = _body(request_data)
        try:
            async with asyncio.timeout(overall):
                async with self._session.request(method, url, data=body, headers=headers, timeout=timeout) as response:
                    return response.status, await response.read()
        except TimeoutError as exc:  # aiohttp's own timeouts are TimeoutErrors too
            raise TimedOut from exc
        except aiohttp.ClientError as exc:  # the URL holds the token: it never goes into the message
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {str(exc).replace(url, '<Bot API URL>')}") from exc
