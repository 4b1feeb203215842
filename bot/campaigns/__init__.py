"""Campaigns (群发): targets, content, checks, repeats and runs (runs.py), and the fan-out that hands a run to the outbox.

Imports bot.core, bot.sending and bot.crm only.
"""
