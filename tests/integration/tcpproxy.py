"""A small TCP proxy for fault tests: forwards bytes, and can stall or cut them.

Point a client at ``127.0.0.1:<proxy.port>`` and it reaches ``upstream``
byte for byte (TLS passes through untouched: the API server's certificate
names 127.0.0.1, which is still right). ``stall()`` keeps accepting
connections but stops moving bytes in either direction, as a black-holed
network does: what the client sends waits in the socket buffers and is
delivered on ``resume()``. ``cut()`` resets every connection and resets new
ones until ``resume()``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

CHUNK = 64 * 1024
HIGH_WATER = 1 << 20  # stop reading a side while this much waits for the other


@dataclass
class _Pipe:
    client: socket.socket
    upstream: socket.socket
    to_up: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    client_eof: bool = False
    up_eof: bool = False
    up_shut: bool = False
    client_shut: bool = False


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped middlebox connection looks."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``upstream``; ``stall``/``cut``/``resume`` on demand."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._pipes: list[_Pipe] = []
        self._lock = threading.Lock()
        self._mode = "forward"  # forward | stall | cut
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="tcpproxy", daemon=True)
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.last_up: float | None = None  # monotonic time of the last byte forwarded upstream

    def start(self) -> TcpProxy:
        """Start forwarding (returns self)."""
        self._thread.start()
        return self

    @property
    def mode(self) -> str:
        """``forward``, ``stall`` or ``cut``."""
        return self._mode

    def stall(self) -> None:
        """Keep connections and accept new ones, but move no bytes."""
        with self._lock:
            self._mode = "stall"

    def cut(self) -> None:
        """Reset every connection now, and every new one until ``resume``."""
        with self._lock:
            self._mode = "cut"

    def resume(self) -> None:
        """Forward again (bytes held during a stall are delivered)."""
        with self._lock:
            self._mode = "forward"

    def close(self) -> None:
        """Stop the proxy and close every socket."""
        self._closed = True
        self._thread.join(5)
        for p in self._pipes:
            p.client.close()
            p.upstream.close()
        self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the loop ----------------------------------------------------------------------------

    def _accept(self, mode: str) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            if mode == "cut":
                _reset(conn)
                continue
            try:
                up = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(conn)
                continue
            for s in (conn, up):
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipes.append(_Pipe(conn, up))
            self.connections += 1

    def _drop(self, p: _Pipe) -> None:
        _reset(p.client)
        _reset(p.upstream)
        self._pipes.remove(p)

    def _loop(self) -> None:
        while not self._closed:
            with self._lock:
                mode = self._mode
            if mode == "cut":
                for p in list(self._pipes):
                    self._drop(p)
            reads: list[socket.socket] = [self._listener]
            writes: list[socket.socket] = []
            if mode == "forward":
                for p in self._pipes:
                    if not p.client_eof and len(p.to_up) < HIGH_WATER:
                        reads.append(p.client)
                    if not p.up_eof and len(p.to_client) < HIGH_WATER:
                        reads.append(p.upstream)
                    if p.to_up:
                        writes.append(p.upstream)
                    if p.to_client:
                        writes.append(p.client)
            try:
                readable, writable, _ = select.select(reads, writes, [], 0.05)
            except (OSError, ValueError):
                readable, writable = [], []
            for s in readable:
                if s is self._listener:
                    self._accept(mode)
            if mode != "forward":
                continue
            for p in list(self._pipes):
                try:
                    self._pump(p, readable, writable)
                except OSError:
                    self._drop(p)

    def _pump(self, p: _Pipe, readable: list[socket.socket], writable: list[socket.socket]) -> None:
        if p.client in readable:
            data = p.client.recv(CHUNK)
            if data:
                p.to_up += data
            else:
                p.client_eof = True
        if p.upstream in readable:
            data = p.upstream.recv(CHUNK)
            if data:
                p.to_client += data
            else:
                p.up_eof = True
        if p.upstream in writable and p.to_up:
            n = p.upstream.send(p.to_up)
            del p.to_up[:n]
            self.bytes_up += n
            self.last_up = time.monotonic()
        if p.client in writable and p.to_client:
            n = p.client.send(p.to_client)
            del p.to_client[:n]
            self.bytes_down += n
        # Pass a half-close on once everything before it was delivered.
        if p.client_eof and not p.to_up and not p.up_shut:
            p.upstream.shutdown(socket.SHUT_WR)
            p.up_shut = True
        if p.up_eof and not p.to_client and not p.client_shut:
            p.client.shutdown(socket.SHUT_WR)
            p.client_shut = True
        if p.up_shut and p.client_shut:
            p.client.close()
            p.upstream.close()
            self._pipes.remove(p)
