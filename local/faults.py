"""A TCP proxy on 127.0.0.1 that can kill or freeze the dependency behind it, for fault drills.

Put it between the API and the moto server or the inference server, then switch it:
  up      bytes flow both ways (the dependency as it is);
  down    the port is closed and open connections are reset: what a killed process looks like;
  frozen  connections are accepted and requests read, but nothing ever answers: a hung process.
Everything stops with `stop()`: held connections are closed, threads are daemons.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import Literal

Mode = Literal["up", "down", "frozen"]


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, port: int = 0):
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._clients: set[socket.socket] = set()  # the caller's side: reset when killed
        self._stopped = threading.Event()
        self.mode: Mode = "up"
        self._listener = self._listen(port)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._start_accepting()

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        return listener

    def _start_accepting(self) -> None:
        listener = self._listener
        threading.Thread(target=self._accept, args=(listener,), name="fault-proxy", daemon=True).start()

    def set(self, mode: Mode) -> None:
        with self._lock:
            previous, self.mode = self.mode, mode
            if mode != "up":  # open connections die (down) or go silent (frozen) with the dependency
                for sock in list(self._sockets) if mode == "down" else ():
                    self._reset(sock) if sock in self._clients else self._close(sock)
            if mode == "down" and previous != "down":
                self._close_listener()
        if previous == "down" and mode != "down":
            self._listener = self._listen(self.port)
            self._start_accepting()

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            self._close_listener()
            for sock in list(self._sockets):
                self._reset(sock)

    def _close_listener(self) -> None:
        with contextlib.suppress(
            OSError
        ):  # shutdown wakes the thread blocked in accept(); close alone doesn't
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _reset(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        with contextlib.suppress(OSError):
            sock.close()
        self._sockets.discard(sock)
        self._clients.discard(sock)

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:  # closed by set("down") or stop()
                return
            with self._lock:
                self._sockets.add(client)
                self._clients.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            while not self._stopped.is_set():
                readable, _, _ = select.select([client] + ([upstream] if upstream else []), [], [], 0.1)
                if self.mode == "frozen":
                    for sock in readable:  # read and drop: the request is taken, no answer comes
                        if sock is client and not client.recv(65536):
                            return
                    continue
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        if upstream is None:
                            upstream = socket.create_connection(self._target, timeout=5)
                            with self._lock:
                                self._sockets.add(upstream)
                        upstream.sendall(data)
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                if self.mode == "down":
                    self._reset(client)
                for sock in (client, upstream):
                    if sock is not None:
                        self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.close()
        self._sockets.discard(sock)
        self._clients.discard(sock)
