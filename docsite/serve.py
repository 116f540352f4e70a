"""Serve a built site over HTTP on the loopback interface, for a reader or a browser test."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not worth a line each."""


def server(site: Path, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server of ``site``'s files; port 0 picks a free port (read ``server_port``)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    return ThreadingHTTPServer((host, port), handler)


@contextmanager
def serving(site: Path) -> Iterator[str]:
    """Serve ``site`` in a background thread for the block; yields the base URL."""
    httpd = server(site)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
