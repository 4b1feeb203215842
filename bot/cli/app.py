"""The `kefu` group: every command module's commands and groups, added in one place.

Why a module of its own: each command module (serve, faq, agent, campaign, ...) registers its
own subcommands and knows nothing of the others; this is where they become one command.
"""

from __future__ import annotations

import click

from bot.cli import admin_user, agent, campaign, chat, customer, faq, maintenance, orders, sandbox, serve, wecom


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kefu")
def main() -> None:
    """kefu 客服: a customer-service bot for online shops on WeChat-style IM."""


for command in (serve.init, serve.run, serve.serve, serve.admin_cmd, serve.scheduler,
                maintenance.doctor, maintenance.backup, maintenance.restore,
                chat.chat, sandbox.sandbox, faq.faq, admin_user.admin_user, agent.agent,
                orders.orders, wecom.wecom, customer.customer, campaign.campaign):
    main.add_command(command)
