"""``python -m asr_client``: stream a WAV file (or the microphone) to the server.

Partials are shown on stderr as they change; the final transcript is the LAST line of stdout,
so scripts can take ``| tail -n 1``. ``--json`` prints every server event as one JSON line on
stdout instead. Modes (as the seed's client had them):

* ``streaming`` (default): the native protocol, binary PCM frames paced in real time;
* ``file``: the seed's JSON protocol (base64 ``audio_chunk`` messages → ``transcription``);
* ``microphone``: live capture with the optional ``sounddevice`` package, Ctrl-C to stop.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from asr_service.wav import WavReadError, read_wav

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class ClientError(Exception):
    """Something the user must fix (file, option, optional dependency)."""


class Printer:
    """Partials on stderr (rewritten in place on a terminal), events or transcript on stdout."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.tty = sys.stderr.isatty()
        self.shown = ""
        self.finals: list[str] = []

    def event(self, event: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(event, ensure_ascii=False), flush=True)
            return
        kind = event.get("type")
        if kind in ("partial", "transcription") and not event.get("is_final"):
            self._show(" ".join([*self.finals, event.get("text", "")]).strip())
        elif kind == "final":
            if event.get("text"):
                self.finals.append(event["text"])
            self._show(" ".join(self.finals))
        elif kind in ("error", "closing"):
            self._clear()
            print(
                f"server {kind}: {event.get('code', event.get('reason'))}: {event.get('message', '')}",
                file=sys.stderr,
            )

    def _show(self, text: str) -> None:
        if text == self.shown:
            return
        self.shown = text
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def _clear(self) -> None:
        if self.tty and self.shown:
            sys.stderr.write("\n")

    def transcript(self, text: str) -> None:
        self._clear()
        if not self.as_json:
            print(text, flush=True)


async def _paced(pcm: np.ndarray, rate: int, chunk_ms: int, realtime: bool) -> AsyncIterator[bytes]:
    step = max(1, rate * chunk_ms // 1000)
    started = time.monotonic()
    for index, offset in enumerate(range(0, len(pcm), step)):
        if realtime:
            delay = started + index * step / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        yield pcm[offset : offset + step].tobytes()


def _require_sounddevice() -> Any:
    try:
        import sounddevice  # optional: only microphone mode needs it (and PortAudio)
    except (ImportError, OSError) as error:
        raise ClientError(
            f"--mode microphone needs the optional 'sounddevice' package and PortAudio ({error}); "
            "install them with: pip install sounddevice && apt-get install libportaudio2"
        ) from None
    return sounddevice


async def _microphone(rate: int, chunk_ms: int) -> AsyncIterator[bytes]:
    sounddevice = _require_sounddevice()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)  # Ctrl-C ends the stream: eof, then the final

    def captured(indata: Any, _frames: int, _time: Any, _status: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, bytes(indata))

    print("listening… press Ctrl-C to stop", file=sys.stderr)
    with sounddevice.RawInputStream(
        samplerate=rate, channels=1, dtype="int16", blocksize=rate * chunk_ms // 1000, callback=captured
    ):
        while not stop.is_set():
            getter = asyncio.ensure_future(queue.get())
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if getter in done:
                yield getter.result()
            else:
                getter.cancel()
    loop.remove_signal_handler(signal.SIGINT)


async def _receive(ws: ClientConnection, printer: Printer) -> tuple[str | None, bool]:
    """Events until the close: (final transcript, whether the session ended well)."""
    transcript: str | None = None
    ok = True
    try:
        async for message in ws:
            event = json.loads(message)
            printer.event(event)
            kind = event.get("type")
            if kind == "done":
                transcript = event.get("text", "")
            elif kind == "transcription" and event.get("is_final"):
                transcript = event.get("text", "")
                await ws.close()
            elif kind == "error" and event.get("close_code") is not None:
                ok = False
            elif kind == "closing":
                transcript = " ".join(printer.finals)
    except ConnectionClosed:
        pass
    return transcript, ok and ws.close_code in (1000, 1001)


async def run(args: argparse.Namespace) -> int:
    printer = Printer(args.json)
    if args.mode == "microphone":
        _require_sounddevice()  # fail before connecting
        rate = args.sample_rate
        audio: AsyncIterator[bytes] = _microphone(rate, args.chunk_ms)
    else:
        if args.audio_file is None:
            raise ClientError(f"--mode {args.mode} needs --audio-file")
        try:
            pcm, rate = read_wav(args.audio_file)
        except WavReadError as error:
            raise ClientError(str(error)) from None
        audio = _paced(pcm, rate, args.chunk_ms, realtime=not args.no_realtime)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    try:
        async with connect(
            args.server, additional_headers=headers, max_size=None, open_timeout=args.timeout
        ) as ws:
            printer.event(json.loads(await ws.recv()))  # the connection event
            receiver = asyncio.create_task(_receive(ws, printer))
            with contextlib.suppress(ConnectionClosed):  # the server may close first (error, drain)
                await _send(ws, args.mode, audio, rate)
            transcript, ok = await asyncio.wait_for(receiver, args.timeout)
    except InvalidStatus as error:
        status = error.response.status_code
        retry = error.response.headers.get("Retry-After")
        hint = f" (retry after {retry} s)" if retry else ""
        print(f"server refused the connection: HTTP {status}{hint}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, InvalidURI, TimeoutError) as error:
        print(f"cannot talk to {args.server}: {error}", file=sys.stderr)
        return EXIT_FAILED
    if transcript is None:
        print("the server closed the session without a final transcript", file=sys.stderr)
        return EXIT_FAILED
    printer.transcript(transcript)
    return EXIT_OK if ok else EXIT_FAILED


async def _send(ws: ClientConnection, mode: str, audio: AsyncIterator[bytes], rate: int) -> None:
    if mode == "file":  # the seed's JSON protocol
        previous: bytes | None = None
        index = 0
        async for chunk in audio:
            if previous is not None:
                await ws.send(_seed_chunk(previous, index, False, rate))
                index += 1
            previous = chunk
        await ws.send(_seed_chunk(previous or b"", index, True, rate))
        return
    await ws.send(json.dumps({"type": "start", "sample_rate": rate, "encoding": "s16le"}))
    try:
        async for chunk in audio:
            await ws.send(chunk)
    finally:
        await ws.send(json.dumps({"type": "eof"}))


def _seed_chunk(pcm: bytes, index: int, is_final: bool, rate: int) -> str:
    return json.dumps(
        {
            "type": "audio_chunk",
            "audio_data": base64.b64encode(pcm).decode(),
            "sample_rate": rate,
            "chunk_id": index,
            "is_final": is_final,
        }
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asr_client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="ws://localhost:8765", help="WebSocket URL (default %(default)s)")
    parser.add_argument("--audio-file", type=Path, help="WAV/FLAC file (any common rate; channels are mixed)")
    parser.add_argument("--mode", choices=("streaming", "file", "microphone"), default="streaming")
    parser.add_argument("--no-realtime", action="store_true", help="send as fast as possible")
    parser.add_argument("--json", action="store_true", help="print every server event as one JSON line")
    parser.add_argument(
        "--token",
        default=os.environ.get("ASR_TOKEN") or None,
        help="bearer token when the server requires one (default: $ASR_TOKEN, kept out of `ps`)",
    )
    parser.add_argument("--chunk-ms", type=int, default=100, help="audio per message (default %(default)s)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="microphone capture rate")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.chunk_ms <= 0:
        print("--chunk-ms must be positive", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(run(args))
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
