"""A small TCP proxy for fault tests: cut every connection on command, refuse new ones, throttle.

It sits between the agent and the gateway on loopback and knows nothing of
TLS or HTTP: it moves bytes. ``cut()`` resets every open connection (RST,
as a dropped link looks to both ends); ``refuse()`` closes the listening
socket so new connections are refused until ``accept()`` opens it again on
the same port; ``rate`` limits the client-to-server direction so an upload
takes long enough to be cut in the middle.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time


class _Bucket:
    """A token bucket shared by all connections (bytes per second, client to server)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def take(self, n: int) -> None:
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + n / self.rate
            wait = start - now
        if wait > 0:
            time.sleep(wait)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target address."""

    def __init__(
        self, target: tuple[str, int], *, port: int = 0, rate: float | None = None
    ) -> None:
        self.target = target
        self.bucket = _Bucket(rate)
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self.port = port
        self.connections = 0
        self.cuts = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.accept()

    # -- control -------------------------------------------------------------------------

    def accept(self) -> None:
        """Listen (again) on the proxy's port."""
        with self._lock:
            if self._listener is not None:
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(64)
            self.port = sock.getsockname()[1]
            self._listener = sock
        threading.Thread(target=self._accept_loop, args=(sock,), daemon=True).start()

    def refuse(self) -> None:
        """Stop listening: new connections are refused (open ones stay up)."""
        with self._lock:
            sock, self._listener = self._listener, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self) -> int:
        """Reset every open connection; returns how many were cut."""
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for s in conns:
            _reset(s)
        if conns:
            self.cuts += 1
        return len(conns) // 2

    def outage(self, seconds: float) -> None:
        """Cut everything and refuse new connections for a while."""
        self.refuse()
        self.cut()
        time.sleep(seconds)
        self.accept()

    def close(self) -> None:
        """Stop the proxy and drop every connection."""
        self._stopped.set()
        self.refuse()
        self.cut()

    @property
    def open_connections(self) -> int:
        """Client connections open now."""
        with self._lock:
            return len(self._conns) // 2

    # -- plumbing ---------------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # refused or closed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._conns.update((client, upstream))
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                if up:
                    self.bucket.take(len(data))
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                dst.sendall(data)
        except OSError:
            _reset(src)
            _reset(dst)
        finally:
            with self._lock:
                self._conns.discard(src)


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN: the peer sees 'connection reset', as on a broken link."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
