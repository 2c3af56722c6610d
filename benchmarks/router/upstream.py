"""The benchmark's upstream: router.testing's OpenAI-protocol server, answering at once or
after a fixed latency, one uvicorn worker (uvloop + httptools) on 127.0.0.1.

    python benchmarks/router/upstream.py PORT LATENCY_S
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from router.testing.openai_server import FakeOpenAI

if __name__ == "__main__":
    port, latency = int(sys.argv[1]), float(sys.argv[2])
    app = FakeOpenAI(name="bench", latency_s=latency, record=False)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="on",
    )
