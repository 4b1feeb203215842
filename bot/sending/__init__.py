"""Sending: the outbox, WeChat's send window and limits, access tokens, what a reply carries.

How every send is kept exactly-once and within the platform's limits. Imports bot.core (and
bot.ops.metrics for its counters) only.
"""
