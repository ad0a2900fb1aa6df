"""A TCP relay that caps the bytes per second flowing back to the client: a slow link in front
of a real service (the S3 endpoint), so that a download takes as long as a large one would.

It relays bytes and nothing else: requests and answers are the real service's own. It runs in a
thread of the test process with its own event loop, so the test's loop stays free.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType

CHUNK = 4096


class SlowLink:
    """`127.0.0.1:port` relays to `upstream_host:upstream_port`; the answers at
    `bytes_per_s`."""

    def __init__(self, upstream_host: str, upstream_port: int, bytes_per_s: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.bytes_per_s = bytes_per_s
        self.port = 0
        self._free_at = 0.0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-link", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SlowLink:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the slow link did not start")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer, limited=False),
            self._pipe(up_reader, writer, limited=True),
            return_exceptions=True,
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limited: bool
    ) -> None:
        try:
            while chunk := await reader.read(CHUNK):
                if limited:
                    # one link shared by every connection: each chunk waits its turn
                    now = time.monotonic()
                    self._free_at = max(self._free_at, now) + len(chunk) / self.bytes_per_s
                    await asyncio.sleep(self._free_at - now)
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()
