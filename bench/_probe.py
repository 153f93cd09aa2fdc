"""A /healthz poller in its own process, as a load balancer probes an instance from outside.

    python -m bench._probe URL

Reads commands on stdin: ``start`` begins a phase, in which ``URL`` is polled every 50 ms over
one keep-alive connection (the standard library's client, no event loop); ``stop`` ends it and
prints the phase's latencies (seconds) as one JSON line. It exits when stdin closes. In a
process of its own its timings are the server's: in the bench's process they also waited
behind the burst's own clients on the same event loop.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

EVERY = 0.05


def poll(url: str, stop: threading.Event, out: list[float]) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    while not stop.is_set():
        t0 = time.perf_counter()
        conn.request("GET", parts.path)
        response = conn.getresponse()
        response.read()
        out.append(time.perf_counter() - t0)
        if response.status != 200:
            print(f"/healthz answered {response.status}", file=sys.stderr)
        stop.wait(EVERY)
    conn.close()


def main(url: str) -> None:
    for line in sys.stdin:
        if line.strip() != "start":
            continue
        stop, samples = threading.Event(), []  # type: ignore[var-annotated]
        poller = threading.Thread(target=poll, args=(url, stop, samples))
        poller.start()
        sys.stdin.readline()  # "stop"
        stop.set()
        poller.join()
        print(json.dumps(samples), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
