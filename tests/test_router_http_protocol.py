"""One write per answer: the router's uvicorn protocol joins the writes of a loop iteration
(router/http_protocol.py). The transport below is a recording stand-in for uvloop's; the
router itself runs on this protocol in every test that uses tests/fixtures/router_env.py."""

from __future__ import annotations

import asyncio

from router.http_protocol import CoalescingTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_writes_of_one_iteration_go_out_as_one():
    async def run() -> list[bytes]:
        real = RecordingTransport()
        t = CoalescingTransport(real, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        t.write(b"")
        t.write(b"ok")
        assert real.writes == []  # nothing sent before the loop turns
        await asyncio.sleep(0)
        t.write(b"next")
        await asyncio.sleep(0)
        return real.writes

    assert asyncio.run(run()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", b"next"]


def test_close_flushes_first_and_later_writes_are_dropped():
    async def run() -> RecordingTransport:
        real = RecordingTransport()
        t = CoalescingTransport(real, asyncio.get_running_loop())
        t.write(b"last words")
        t.close()
        t.write(b"too late")
        await asyncio.sleep(0)
        assert t.get_extra_info("peername") == "info:peername"  # the rest passes through
        return real

    real = asyncio.run(run())
    assert real.writes == [b"last words"] and real.closed
