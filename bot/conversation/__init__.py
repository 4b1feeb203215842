"""The conversation flow: one inbound message to its reply (dispatcher, routing, relay), revisits, the agents' workbench.

The top of the domain: imports bot.core, bot.sending, bot.agents, bot.faq, bot.crm and bot.ops.
"""
