"""The Discord front end (discord.py 2.x): slash commands in, embeds out; alerts through the bot or a webhook."""
