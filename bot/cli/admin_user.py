"""`kefu admin-user ...`: the admin panel's users (add, reset-password)."""

from __future__ import annotations

import sys

import click

from bot.cli.options import config_option, open_db
from bot.core.config import Config


@click.group("admin-user")
def admin_user() -> None:
    """Manage admin panel users."""


@admin_user.command("add")
@config_option
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "operator", "agent"]), default="operator", show_default=True,
              help="admin: everything; operator: no users, settings or channels; agent: only the workbench.")
@click.option("--agent", "agent_name", default=None, help="With --role agent: the agent (name or id) this user works as.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt.")
def admin_user_add(config: Config, username: str, role: str, agent_name: str | None, password_stdin: bool) -> None:
    """Add a panel user USERNAME (the password is prompted, or read with --password-stdin)."""
    from admin.users import UserError, create_user
    from bot.conversation.relay_delivery import find_agent

    password = _read_password(password_stdin, "Password")
    open_db(config)
    agent_id = None
    if agent_name is not None:
        found = find_agent(agent_name)
        if found is None:
            raise click.ClickException(f"no agent named {agent_name!r} (see `kefu agent list`)")
        agent_id = found.id
    try:
        user = create_user(username, password, role, agent_id=agent_id)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"admin user {user.username} (#{user.id}) added with role {role}"
               + (f", working as agent {agent_name}" if agent_id is not None else ""))


def _read_password(from_stdin: bool, prompt: str) -> str:
    """A password never on the command line: one line of standard input, or typed twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))


@admin_user.command("reset-password")
@config_option
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt.")
def admin_user_reset_password(config: Config, username: str, password_stdin: bool) -> None:
    """Set a new password for panel user USERNAME and unlock the account (a forgotten password,
    or locked after 5 wrong ones); they choose their own at the next login."""
    from admin.users import UserError, reset_password

    password = _read_password(password_stdin, "New password")
    open_db(config)
    try:
        user = reset_password(username, password)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"admin user {user.username} (#{user.id}): password reset, unlocked; "
               "a new password is asked at the next login")
