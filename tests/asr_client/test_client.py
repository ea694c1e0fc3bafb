"""The client CLI against a real server: transcript as the last stdout line, --json, modes, auth."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import structlog

from asr_client.stream import main
from tests.asr_service.fakes import word_audio

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def quiet_server_logs():
    # The in-process server logs to stdout by default; these tests read the client's stdout.
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=io.StringIO()))
    yield
    structlog.reset_defaults()


@pytest.fixture
def wav_44k_stereo(tmp_path) -> Path:
    mono = word_audio("bad", rate=44100)
    path = tmp_path / "bad.wav"
    soundfile.write(path, np.stack([mono, mono], axis=1), 44100, subtype="PCM_16")
    return path


def test_final_transcript_is_the_last_stdout_line_and_partials_go_to_stderr(server, wav_44k_stereo):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr_client",
            "--server",
            server.url,
            "--audio-file",
            str(wav_44k_stereo),
            "--no-realtime",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "b a d"
    assert result.stdout.count("\n") == 1  # nothing else on stdout
    assert "b a" in result.stderr.splitlines()  # partials, as they changed


def test_json_prints_every_server_event(server, wav_44k_stereo, capsys):
    assert main(["--server", server.url, "--audio-file", str(wav_44k_stereo), "--no-realtime", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "connection" and kinds[-1] == "done" and "partial" in kinds and "final" in kinds
    assert events[-1]["text"] == "b a d"


def test_file_mode_uses_the_seed_protocol(server, wav_44k_stereo, capsys):
    assert (
        main(["--server", server.url, "--audio-file", str(wav_44k_stereo), "--mode", "file", "--json"]) == 0
    )
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    transcriptions = [e for e in events if e["type"] == "transcription"]
    assert transcriptions[-1]["is_final"] and transcriptions[-1]["text"] == "b a d"


def test_realtime_pacing_takes_as_long_as_the_audio(server, tmp_path, capsys):
    path = tmp_path / "short.wav"
    soundfile.write(path, word_audio("ab"), 16000)  # 0.52 s
    started = time.monotonic()
    assert main(["--server", server.url, "--audio-file", str(path)]) == 0
    assert time.monotonic() - started >= 0.45
    assert capsys.readouterr().out.splitlines()[-1] == "a b"


def test_token_is_sent_and_a_missing_one_fails_clearly(start_server, wav_44k_stereo, capsys):
    secured = start_server(auth_tokens=("tok",))
    args = ["--server", secured.url, "--audio-file", str(wav_44k_stereo), "--no-realtime"]
    assert main([*args, "--token", "tok"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "b a d"
    assert main(args) == 1
    assert "unauthorized" in capsys.readouterr().err


def test_refused_connection_reports_the_status(start_server, wav_44k_stereo, capsys):
    busy = start_server(max_sessions=1, retry_after_s=3)
    from websockets.sync.client import connect

    with connect(busy.url) as holder:
        holder.recv(timeout=5)
        assert main(["--server", busy.url, "--audio-file", str(wav_44k_stereo), "--no-realtime"]) == 1
    assert "HTTP 503 (retry after 3 s)" in capsys.readouterr().err


def test_microphone_mode_without_its_optional_dependency_is_a_clear_error(server, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as if not installed
    assert main(["--server", server.url, "--mode", "microphone"]) == 2
    assert "needs the optional 'sounddevice' package" in capsys.readouterr().err


def test_unreadable_audio_file_is_a_clear_error(server, tmp_path, capsys):
    bad = tmp_path / "not.wav"
    bad.write_bytes(b"hello")
    assert main(["--server", server.url, "--audio-file", str(bad)]) == 2
    assert "cannot read audio file" in capsys.readouterr().err


class _FakeSoundDevice:
    """Stands in for the optional sounddevice package: a 'microphone' that plays a clip."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio

    def RawInputStream(self, samplerate, channels, dtype, blocksize, callback):  # noqa: N802 - its API
        import contextlib
        import threading

        from asr_service.audio import encode_pcm16

        pcm = encode_pcm16(self.audio)
        stop = threading.Event()

        def play():
            for offset in range(0, len(pcm), blocksize * 2):
                if stop.wait(blocksize / samplerate):
                    return
                callback(pcm[offset : offset + blocksize * 2], blocksize, None, None)

        @contextlib.contextmanager
        def stream():
            player = threading.Thread(target=play)
            player.start()
            try:
                yield
            finally:
                stop.set()
                player.join()

        return stream()


def test_microphone_mode_streams_until_ctrl_c_then_prints_the_transcript(server, capsys, monkeypatch):
    import os
    import signal
    import threading

    from tests.asr_service.fakes import silence

    monkeypatch.setitem(
        sys.modules, "sounddevice", _FakeSoundDevice(np.concatenate([word_audio("ce"), silence(5)]))
    )
    threading.Timer(1.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    assert main(["--server", server.url, "--mode", "microphone"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "c e"
