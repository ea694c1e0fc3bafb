"""Small synchronous test clients for the two protocols (real websockets client)."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from asr_service.audio import encode_pcm16


def recv_event(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def recv_all(ws: ClientConnection, timeout: float = 10) -> list[dict[str, Any]]:
    """Every event until the server closes the connection."""
    events = []
    try:
        while True:
            events.append(recv_event(ws, timeout))
    except ConnectionClosed:
        return events


def stream_native(
    url: str, audio: np.ndarray, sample_rate: int = 16000, frame_ms: int = 100, **connect_kwargs: Any
) -> tuple[list[dict[str, Any]], int | None]:
    """start → binary frames → eof; returns (events after `connection`, close code)."""
    with connect(url, **connect_kwargs) as ws:
        assert recv_event(ws)["type"] == "connection"
        ws.send(json.dumps({"type": "start", "sample_rate": sample_rate, "encoding": "s16le"}))
        pcm = encode_pcm16(audio)
        step = sample_rate * frame_ms // 1000 * 2
        for offset in range(0, len(pcm), step):
            ws.send(pcm[offset : offset + step])
        ws.send(json.dumps({"type": "eof"}))
        events = recv_all(ws)
        return events, ws.close_code


def audio_chunk_message(
    audio: np.ndarray, chunk_id: Any, is_final: bool = False, sample_rate: int | None = None
) -> str:
    message: dict[str, Any] = {
        "type": "audio_chunk",
        "audio_data": base64.b64encode(encode_pcm16(audio)).decode(),
        "chunk_id": chunk_id,
        "is_final": is_final,
    }
    if sample_rate is not None:
        message["sample_rate"] = sample_rate
    return json.dumps(message)


def final_text(events: list[dict[str, Any]]) -> str:
    return " ".join(e["text"] for e in events if e["type"] == "final" and e["text"])
