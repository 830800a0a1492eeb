"""HTTP(S) health probes against the components' loopback ports (standard library only)."""

from __future__ import annotations

import http.client
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from ballast.localcluster.certs import PKI


def admin_context(pki: PKI) -> ssl.SSLContext:
    """TLS context that trusts the cluster CA and presents the admin client certificate."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return ctx


def insecure_context() -> ssl.SSLContext:
    """TLS context for components that serve a self-signed cert on loopback (health only)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def get(url: str, context: ssl.SSLContext | None = None, timeout_s: float = 3.0) -> int:
    """Status code of ``GET url``; 0 when nothing answered (refused, reset, timed out)."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout_s) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return 0


def get_body(url: str, context: ssl.SSLContext | None = None, timeout_s: float = 5.0) -> bytes:
    """Body of ``GET url`` (raises ``urllib.error.URLError`` and friends on failure)."""
    with urllib.request.urlopen(url, context=context, timeout=timeout_s) as resp:
        body: bytes = resp.read()
        return body


def wait_ok(
    url: str,
    timeout_s: float,
    alive: Callable[[], bool] = lambda: True,
    interval_s: float = 0.05,
) -> float:
    """Seconds until ``GET url`` answers 200 (a TLS certificate is not checked).

    Raises ``TimeoutError`` after ``timeout_s``, and ``RuntimeError`` as soon as
    ``alive()`` says the process behind the URL has exited.
    """
    ctx = insecure_context() if url.startswith("https:") else None
    t0 = time.monotonic()
    while get(url, context=ctx, timeout_s=1.0) != 200:
        if not alive():
            raise RuntimeError(f"{url}: the process exited before it was ready")
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"{url}: not ready after {timeout_s:.0f}s")
        time.sleep(interval_s)
    return time.monotonic() - t0
