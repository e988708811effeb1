"""The AI layer's configuration from the settings: the providers that have a key, in the order they are asked."""

from __future__ import annotations

from ai.config import AIConfig, ProviderConfig
from core.logs import log_config
from core.settings import Settings


def ai_config(settings: Settings) -> AIConfig:
    candidates = (
        ("groq", settings.groq_api_key, settings.groq_base_url, settings.groq_model),
        ("dashscope", settings.dashscope_api_key, settings.dashscope_base_url, settings.dashscope_model),
        ("openai", settings.openai_api_key, settings.openai_base_url, settings.openai_model),
    )
    providers = tuple(ProviderConfig(name, key, base_url, model) for name, key, base_url, model in candidates
                      if key is not None)
    return AIConfig(providers, settings.ai_timeout, log_config(settings))
