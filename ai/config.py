"""What the AI layer is configured with, built by the composition root from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from core.logs import LogConfig


@dataclass(frozen=True)
class ProviderConfig:
    """One chat-completion provider with a key: groq (base_url is the host) or an OpenAI-compatible one (with /v1)."""

    name: str  # groq | dashscope | openai
    api_key: SecretStr
    base_url: str
    model: str


@dataclass(frozen=True)
class AIConfig:
    """The providers with a key, in the order they are asked, each call's timeout, and how the model worker logs."""

    providers: tuple[ProviderConfig, ...]
    timeout: float
    logging: LogConfig
