"""The HTTPS listener: one thread per connection, TLS handshake off the accept loop.

The certificate is reloaded in place (:meth:`WebhookServer.load_cert`):
connections opened after a rotation get the new certificate, open ones keep
theirs. Routes: ``POST`` the paths in ``admit.PATHS``, ``GET /healthz``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from ballast.logs import kv
from ballast.webhook.review import BadReview

log = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024  # a pod with very large env still fits; anything beyond is refused
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0  # the API server keeps connections alive between reviews

Admit = Callable[[str, Any], dict[str, Any]]


def ssl_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A server context holding ``cert_pem``/``key_pem`` (TLS 1.2+)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    load_chain(ctx, cert_pem, key_pem)
    return ctx


def load_chain(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Put a certificate and key into ``ctx`` (ssl only reads them from files)."""
    with tempfile.TemporaryDirectory(prefix="ballast-webhook-") as d:
        cert, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        with open(os.open(cert, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(cert_pem)
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cert, key)


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        return  # one structured line per review is logged by the rules instead

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, b"ok", "text/plain")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._send(413 if length > MAX_BODY else 400, b"bad Content-Length", "text/plain")
            self.close_connection = True
            return
        body = self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        try:
            answer = self.server.admit(path, orjson.loads(body))
        except KeyError:
            self._send(404, b"unknown webhook path", "text/plain")
            return
        except (BadReview, orjson.JSONDecodeError) as exc:
            self._send(400, str(exc).encode(), "text/plain")
            return
        self._send(200, orjson.dumps(answer))


class WebhookServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` over TLS with a reloadable certificate."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], admit: Admit, cert_pem: bytes, key_pem: bytes
    ) -> None:
        self.admit = admit
        self.context = ssl_context(cert_pem, key_pem)
        self._ctx_lock = threading.Lock()
        # Open connections: the API server keeps them alive, so stopping must close them.
        self._open: set[ssl.SSLSocket] = set()
        super().__init__(address, _Handler)
        self._thread: threading.Thread | None = None

    def load_cert(self, cert_pem: bytes, key_pem: bytes) -> None:
        """Serve a new certificate from the next connection on."""
        ctx = ssl_context(cert_pem, key_pem)
        with self._ctx_lock:
            self.context = ctx

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handshake in the connection's own thread, so a slow client cannot stall accept."""
        with self._ctx_lock:
            ctx = self.context
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("tls handshake failed", extra=kv(peer=client_address, error=exc))
            return
        tls.settimeout(IDLE_TIMEOUT)
        with self._ctx_lock:
            self._open.add(tls)
        try:
            super().finish_request(tls, client_address)
        except OSError:
            pass  # the peer went away, or stop() closed the connection
        finally:
            with self._ctx_lock:
                self._open.discard(tls)
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_RDWR)
            tls.close()

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="webhook-server", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.server_address[1])

    def stop(self) -> None:
        """Stop accepting, close the socket and every open connection."""
        self.shutdown()
        self.server_close()
        with self._ctx_lock:
            open_now = list(self._open)
        for conn in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
