"""The checker UI served on a thread of its own (tests, notebooks, the demo)."""

from __future__ import annotations

import asyncio
import threading

import tornado.httpserver
import tornado.netutil
import tornado.web


class BackgroundServer:
    """The UI served on a thread of its own, on a free port (for tests, notebooks, the demo).

    Example::

        with BackgroundServer(make_app(deployment, policies)) as server:
            print(server.url)
    """

    def __init__(self, app: tornado.web.Application, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: tornado.httpserver.HTTPServer | None = None

    @property
    def url(self) -> str:
        """The UI's address, ending in its base URL."""
        return f"http://{self.host}:{self.port}{self.app.settings['srs'].base_url}"

    def start(self) -> str:
        """Bind, start serving in the background and return the URL."""
        sockets = tornado.netutil.bind_sockets(self.port, address=self.host)
        self.port = sockets[0].getsockname()[1]
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)

            async def listen() -> None:
                self._server = tornado.httpserver.HTTPServer(self.app)
                self._server.add_sockets(sockets)

            self._loop.run_until_complete(listen())
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="checker-ui", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)
        return self.url

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._loop is None or self._thread is None:
            return
        loop, server = self._loop, self._server

        def shut() -> None:
            if server is not None:
                server.stop()
            loop.stop()

        loop.call_soon_threadsafe(shut)
        self._thread.join(timeout=30)
        self.app.settings["srs"].registry.dispose()

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
