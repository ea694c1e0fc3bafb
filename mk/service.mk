# asr_service: the container's program.
.PHONY: serve bench bench-plot cost-table client soak

# Extra flags for `python -m asr_service` (e.g. SERVE_ARGS="--device cuda --batch-max-size 64").
SERVE_ARGS ?=
# Extra flags for the load generator; after `--`, flags for the server it starts, e.g.
#   make bench BENCH_ARGS="--streams 10,20,40 -- --batch-max-size 64 --device cuda"
BENCH_ARGS ?=
# Server WORKERS values measured one after the other in one run, e.g. WORKERS="1 2" (capacity of
# each, the ratio, machine CPU busy at capacity); PROFILE=1 adds a py-spy step at each capacity.
WORKERS ?=
PROFILE ?=
# Flags for the soak, e.g. SOAK_ARGS="--seed 7 --abrupt 6000" (python -m bench.soak --help).
SOAK_ARGS ?=

##@ run
serve: venv ## Run the ASR server locally on the shipped demo model (ws :8765, http :8080)
	$(PY) -m asr_service $(SERVE_ARGS)

##@ test
bench: venv system-deps ## Load-test a real local server: streams vs latency table + PNG (bench/results/); WORKERS="1 2" side by side, PROFILE=1 CPU by category
	nice -n 5 $(PY) -m bench.loadgen $(if $(WORKERS),--workers "$(WORKERS)") $(if $(PROFILE),--profile) $(BENCH_ARGS)

# bench-plot: RESULTS is one or more bench/results/*.json (default: the newest); OUT the PNG.
RESULTS ?= $(lastword $(sort $(wildcard bench/results/*.json)))
##@ develop
bench-plot: venv ## Plot bench results: RESULTS="bench/results/a.json ..." [OUT=file.png] [TITLE=...] (default: newest run)
	$(PY) -m bench.plot $(RESULTS) $(if $(OUT),--out "$(OUT)") $(if $(TITLE),--title "$(TITLE)")

cost-table: venv ## README cost tables: RESULTS="<CPU sweep json files> <GPU run json>" (one CPU and one GPU configuration)
	$(PY) scripts/cost_table.py $(RESULTS)

##@ run
client: venv ## Stream AUDIO=file.wav to SERVER (default ws://localhost:8765); final transcript on stdout
	@[ -n "$(AUDIO)" ] || { echo "usage: make client AUDIO=path.wav [SERVER=ws://host:8765]" >&2; exit 2; }
	$(PY) -m asr_client --server $(or $(SERVER),ws://localhost:8765) --audio-file $(AUDIO)

##@ test
soak: venv system-deps ## Soak/fuzz a real server: 10k hostile messages, 3k abrupt disconnects, overload, drain (minutes)
	nice -n 5 $(PY) -m bench.soak $(SOAK_ARGS)
