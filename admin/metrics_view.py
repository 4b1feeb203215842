"""`GET /metrics` on the admin panel's port: Prometheus' text, for a panel run on its own
(`kefu admin` under gunicorn). Outside Flask-Admin and its login: Prometheus authenticates
with `Authorization: Bearer <[metrics] token>`; without `[metrics] enabled` there is no route.
"""

from __future__ import annotations

from flask import Flask, Response

from bot.core.config import Config
from bot.ops import metrics


def register(app: Flask, config: Config) -> None:
    if not config.metrics.enabled:
        return

    def scrape() -> Response:
        from flask import request

        if not metrics.authorized(request.headers.get("Authorization"), config.metrics.token):
            return Response('{"error": "metrics need Authorization: Bearer <[metrics] token>"}', status=401,
                            mimetype="application/json", headers={"WWW-Authenticate": 'Bearer realm="kefu metrics"'})
        body, content_type = metrics.render()
        return Response(body, headers={"Content-Type": content_type})

    app.add_url_rule("/metrics", "kefu_metrics", scrape, methods=["GET"])
