#!/usr/bin/env bash
# EzSpeech's full-size ctc_sc on a GPU machine, in one run (issue #16's GPU checks):
#   1. the 78 M-parameter model with random weights, written as EzSpeech saves it and converted
#      the user's way (bench/ezspeech_full_model.py, then python -m ezspeech_convert);
#   2. do float16 / bfloat16 change the tokens? (bench/ezspeech_precision.py, held-out sentences);
#   3. one forward of a chunked window (4.4 s) per batch size, float32 and float16;
#   4. `make bench`'s load generator against the converted model on the GPU: real-time streams
#      with p95 partial latency <= 500 ms, WORKERS 1 and 2, GPU utilisation sampled alongside.
#
#   bench/gpu_check.sh OUT_DIR
#
# Runs with the machine's own python3 (PY=...), which must have torch with CUDA. The GPU machines
# this project borrows have no network and no espeak-ng, so what they lack comes from build/gpu/
# (prepare it where pip and espeak-ng work: `make gpu-check-files`): wheels of the service's pure
# dependencies, the held-out audio and the 2048-piece tokenizer. DEVICE, STREAMS, WORKERS_SWEEP,
# STREAM_SECONDS and BATCHES override the defaults (a CPU dry run: DEVICE=cpu STREAMS=2
# WORKERS_SWEEP=1 BATCHES=1).
set -uo pipefail
OUT=${1:?usage: bench/gpu_check.sh OUT_DIR}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
STREAMS=${STREAMS:-200,300,400,500,600}
WORKERS_SWEEP=${WORKERS_SWEEP:-1 2}
STREAM_SECONDS=${STREAM_SECONDS:-10}
BATCHES=${BATCHES:-1,64,256,512}
FILES=build/gpu
MODEL_DIR=${MODEL_DIR:-/tmp/ezspeech-full}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || true

step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

step "machine"
imports="import torch, websockets, structlog, soundfile, uvloop, sentencepiece"
if ! "$PY" -c "$imports" 2>/dev/null && ls "$FILES"/whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check "$FILES"/whl/*.whl || exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
"$PY" -c "$imports; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 1

step "1. full-size model, EzSpeech layout, converted"
"$PY" -m bench.ezspeech_full_model --out-dir "$MODEL_DIR" --tokenizer "$FILES/tokenizer.model" || exit 1
"$PY" -m ezspeech_convert "$MODEL_DIR/last.ckpt" --tokenizer "$MODEL_DIR/tokenizer.model" \
    --out "$MODEL_DIR/ctc_sc_full.pt" --allow-pickle || exit 1

step "2. half precision and the tokens"
"$PY" -m bench.ezspeech_precision --device "$DEVICE" --audio "$FILES/heldout.npz" --json "$OUT/precision.json"

step "3. one chunked window (4.4 s) per batch size"
for dtype in float32 float16; do
    "$PY" -m bench.ezspeech_rtf --device "$DEVICE" --dtype "$dtype" --seconds 4.4 --batch "$BATCHES" \
        --no-stream --repeats 5
done | tee "$OUT/rtf.txt"

step "4. load test: streams of the converted model"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi dmon -s um -d 1 >"$OUT/dmon.txt" 2>&1 &
    DMON=$!
fi
"$PY" -m bench.loadgen --streams "$STREAMS" --seconds "$STREAM_SECONDS" --target-ms 500 \
    --stop-after-failures 1 --workers "$WORKERS_SWEEP" --out "$OUT" -- \
    --device "$DEVICE" --model-path "$MODEL_DIR/ctc_sc_full.pt" --batch-max-size 512 --batch-max-wait-ms 10
status=$?
[ -n "${DMON:-}" ] && kill "$DMON" 2>/dev/null
step "done (loadgen exit $status)"
exit $status
