"""The Telegram front end (python-telegram-bot 22): translates updates into commands and messages back."""
