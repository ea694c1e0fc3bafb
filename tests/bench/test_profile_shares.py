"""bench/profile_shares.py: py-spy's collapsed stacks → share of server CPU by category."""

from __future__ import annotations

from bench.profile_shares import OTHER, WAITING, category_of, classify

ROOT = 'process 41:"python -m asr_service.workers.worker";_run (threading.py:1)'
FORWARD = (
    f"{ROOT};_step (/app/asr_service/engine.py:300);step (/app/asr_service/decoding/streaming.py:80);"
    "stream_step (/app/asr_service/model/streaming_ctc.py:120);forward (/v/torch/nn/modules/rnn.py:9) 60"
)
DECODE = (
    f"{ROOT};_step (/app/asr_service/engine.py:300);step (/app/asr_service/decoding/streaming.py:80);"
    "log_softmax (/v/torch/nn/functional.py:2) 20"
)
SEND = (
    'process 41:"python -m asr_service.workers.worker";run (/app/asr_service/session.py:9);'
    "send (/app/asr_service/session.py:200);encode (/app/asr_service/protocol.py:30);"
    "dumps (/usr/lib/python3.11/json/__init__.py:231) 10"
)
FRAMING = "recv (/app/asr_service/session.py:3);parse (/v/websockets/protocol.py:500) 6"
LOOP = "run_forever (/usr/lib/python3.11/asyncio/base_events.py:600) 4"


def test_library_frames_count_for_the_project_code_that_called_them():
    profile = classify([FORWARD, DECODE, SEND, FRAMING, LOOP, "", "garbage"])
    assert profile.samples == 100
    assert profile.by_category == {
        "model forward": 60,
        "decoding": 20,
        "session/protocol": 10,
        "websocket": 6,
        OTHER: 4,
    }
    assert profile.share("model forward") + profile.share("decoding") == 0.8
    assert profile.other_leaves == [("run_forever (/usr/lib/python3.11/asyncio/base_events.py)", 4)]
    assert "| model forward | 60.0 % |" in profile.table()


def test_the_innermost_matching_frame_decides():
    frames = ["run (/a/asr_service/session.py:1)", "send (/v/websockets/asyncio/connection.py:2)"]
    assert category_of(frames) == "websocket"
    assert category_of(frames[:1]) == "session/protocol"
    assert category_of([]) == OTHER


def test_waits_are_not_cpu_and_the_collector_is_its_own_category():
    gil = (
        "forward (/v/torch/nn/modules/rnn.py:9);torch::autograd::THPVariable_gru (python_torch.cpp);"
        "pybind11::gil_scoped_release::~gil_scoped_release (pybind11.h);take_gil (ceval_gil.c:300);"
        "pthread_cond_timedwait (libc.so.6) 7"
    )
    collect = (
        "recv (/app/asr_service/session.py:3);get (/v/websockets/asyncio/messages.py:188);"
        "gc_collect_main (gcmodule.c:1200);visit_reachable (gcmodule.c:500) 3"
    )
    native_forward = (
        "stream_step (/app/asr_service/model/streaming_ctc.py:120);forward (/v/torch/nn/modules/rnn.py:9);"
        "mkl_blas_def_sgemm_kernel_0_zen (libmkl.so) 5"
    )
    profile = classify([gil, collect, native_forward])
    assert category_of(gil.rpartition(" ")[0].split(";")) == WAITING
    assert profile.waiting == 7 and profile.samples == 8
    assert profile.by_category == {"garbage collector": 3, "model forward": 5}


def test_a_workers_entry_frames_do_not_make_its_samples_the_supervisors():
    worker_loop = (
        "<module> (asr_service/workers/worker.py:250);main (asr_service/workers/worker.py:246);"
        "Runner.run (asyncio/runners.py:118);uv__read (stream.c:1) 2"
    )
    hand_off = (
        "main (asr_service/workers/worker.py:246);WorkerServer._accept (asr_service/workers/worker.py:9) 1"
    )
    profile = classify([worker_loop, hand_off])
    assert profile.by_category == {OTHER: 2, "supervisor and hand-off": 1}
