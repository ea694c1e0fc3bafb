"""SIGTERM drain: /ready 503, new sessions refused, open streams get their final, then 1001."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asr_service.audio import encode_pcm16
from tests.asr_service.fakes import word_audio
from tests.asr_service.helpers import http_get


async def _open_stream_midway(url: str, letters: str) -> tuple[object, list[dict]]:
    ws = await connect(url)
    events = [json.loads(await ws.recv())]
    await ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
    await ws.send(encode_pcm16(word_audio(letters)))
    return ws, events


async def _collect(ws, events: list[dict]) -> tuple[list[dict], int | None]:
    try:
        while True:
            events.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    except ConnectionClosed:
        pass
    return events, ws.close_code


def test_drain_gives_every_open_stream_its_final_then_closes_1001(server):
    async def scenario():
        streams = [await _open_stream_midway(server.url, letters) for letters in ("ab", "cd", "ef")]
        await asyncio.sleep(0.2)  # audio is in flight, no eof sent
        drained = server.drain_async()
        results = await asyncio.gather(*(_collect(ws, events) for ws, events in streams))
        await asyncio.wrap_future(drained)
        return results

    results = asyncio.run(scenario())
    for (events, code), letters in zip(results, ("ab", "cd", "ef"), strict=True):
        assert code == 1001
        kinds = [e["type"] for e in events]
        assert kinds[-2:] == ["final", "closing"], kinds
        assert events[-2]["text"] == " ".join(letters)
        assert events[-1] == {"type": "closing", "reason": "server_draining", "close_code": 1001}


def test_ready_turns_503_and_new_sessions_are_refused_while_draining(start_server):
    slow = start_server(drain_timeout_s=5)

    async def scenario():
        ws, events = await _open_stream_midway(slow.url, "a")
        ready_before = http_get(slow.health_port, "/ready")[0]
        slow.server.draining = True  # the first step of drain(), observed before sessions end
        ready_during = http_get(slow.health_port, "/ready")
        with pytest.raises(InvalidStatus) as refused:
            await connect(slow.url)
        slow.server.draining = False
        drained = slow.drain_async()
        await _collect(ws, events)
        await asyncio.wrap_future(drained)
        return ready_before, ready_during, refused.value.response.status_code

    before, during, refused_status = asyncio.run(scenario())
    assert before == 200
    assert during[0] == 503 and json.loads(during[2])["status"] == "draining"
    assert refused_status == 503


def test_drain_with_no_sessions_finishes_at_once(server):
    server.drain_async().result(5)
    assert server.server.draining
