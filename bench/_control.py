"""The machine's floor for a health check under load: a server that does nothing else.

    python -m bench._control PORT

Answers every HTTP/1.1 request on ``127.0.0.1:PORT`` with a fixed 200, from its own process,
keep-alive. ``bench.burst`` probes it next to dealdesk's /healthz, in the same phases: what it
shows during a burst is the wait that scheduling on a busy machine adds to any server, so
dealdesk's figure is read against it.
"""

from __future__ import annotations

import asyncio
import sys

BODY = b'{"ok":true}'
ANSWER = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
          + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


class Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.pending = transport, b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        while b"\r\n\r\n" in self.pending:  # requests without a body: GETs
            _, self.pending = self.pending.split(b"\r\n\r\n", 1)
            self.transport.write(ANSWER)


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
