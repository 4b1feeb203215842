"""Agents: who is on duty (presence), how a conversation gets one (assignment: queue, round-robin), business hours, KPIs.

Imports bot.core, bot.sending and bot.crm (the conversation records) only.
"""
