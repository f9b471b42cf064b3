"""A weights mirror on 127.0.0.1 for download tests: what it serves is set per test, nothing leaves the machine.

Each file is served in one of three ways: whole; cut (the server promises the whole length, sends
half and closes the connection); or not at all (404). The server runs in a thread for the test's
duration and is shut down after it, whatever happens.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WHOLE, CUT = "whole", "cut"


@dataclass
class Mirror:
    url: str
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # name -> (content, WHOLE | CUT)

    def serve(self, name: str, content: bytes, how: str = WHOLE) -> None:
        self.files[name] = (content, how)


@contextmanager
def weights_mirror() -> Iterator[Mirror]:
    files: dict[str, tuple[bytes, str]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            if name not in files:
                self.send_error(404)
                return
            content, how = files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content if how == WHOLE else content[: len(content) // 2])
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Mirror(f"http://127.0.0.1:{server.server_address[1]}/weights", files)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
