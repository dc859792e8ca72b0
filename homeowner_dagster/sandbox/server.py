"""Serve a Starlette app with uvicorn on a free loopback port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningServer:
    name: str
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 3.0) -> None:
        self.begin_stop()
        self.finish_stop(time.monotonic() + timeout)

    def begin_stop(self) -> None:
        self.server.should_exit = True

    def finish_stop(self, deadline: float) -> None:
        """Wait for the server thread; past the deadline, drop open connections (force exit)."""
        self.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout=1.0)


def serve(
    name: str, app: ASGIApp, port: int | None = None, date_header: bool = True
) -> RunningServer:
    """Start `app` on 127.0.0.1 and return once it accepts connections (`date_header=False`:
    the app sends its own `Date`, e.g. a simulated clock)."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        # Keep-alive connections and slow requests must not hold up a stop: 1 s, then closed.
        timeout_graceful_shutdown=1,
        date_header=date_header,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"sandbox-{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"sandbox {name} did not start on port {port}")
        time.sleep(0.01)
    return RunningServer(name, f"http://127.0.0.1:{port}", server, thread)
