"""`kefu sandbox`: the local WeChat stand-in for demos and tests."""

from __future__ import annotations

import click




@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8090, show_default=True, help="Port to listen on.")
@click.option("--app", "apps", multiple=True, metavar="ID=SECRET",
              help="An app (appid or corpid) whose secret is checked: another secret is refused (40125/40001).")
def sandbox(host: str, port: int, apps: tuple[str, ...]) -> None:
    """Run the local WeChat stand-in (api.weixin.qq.com / qyapi.weixin.qq.com) for demos and tests.

    Point a channel's api_base at it (http://127.0.0.1:8090); it records every call
    (GET /sandbox/calls) and injects faults (POST /sandbox/faults).
    """
    from adapters.sandbox.app import serve

    if any("=" not in a for a in apps):
        raise click.BadParameter("use --app ID=SECRET", param_hint="--app")
    serve(host, port, dict(a.split("=", 1) for a in apps))
