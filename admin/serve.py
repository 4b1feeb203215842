"""Serving the admin panel from a thread inside `kefu run`.

Why: the all-in-one process runs the aiohttp server on the event loop and the WSGI panel
beside it; werkzeug's threaded server is enough for a shop's handful of operators
(`kefu admin` under a real WSGI server for more).
"""

from __future__ import annotations

import threading

from flask import Flask
from werkzeug.serving import make_server


class ThreadedWSGIServer:
    def __init__(self, app: Flask, host: str, port: int) -> None:
        self._server = make_server(host, port, app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="admin-wsgi", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
