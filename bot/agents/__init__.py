"""Agents: who is on duty (presence; last_seen: when each was last active), how a conversation gets one
(assignment: queue, round-robin), business hours, KPIs (kpi: per agent; kpi_shop: the shop's figures for a range).

Imports bot.core, bot.sending and bot.crm (the conversation records) only.
"""
