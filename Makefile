# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use and install gandist into it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
TORCH_VERSION ?= 2.13.0

DEMO_DATA := runs/data/shapes
DEMO_STORE := runs/store

.PHONY: demo test bench clean-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# Without CUDA, install torch before anything else asks for it, so the CPU build is used.
	if ! command -v nvidia-smi >/dev/null 2>&1; then \
	  $(PY) -m pip install -q "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS); fi
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(DEMO_DATA)/manifest.json: | $(STAMP)
	$(VENV)/bin/gandist shard builtin:shapes $(DEMO_DATA) --samples 2048 --heldout 256 --shard-size 256 --seed 0

demo: $(STAMP) $(DEMO_DATA)/manifest.json
	$(VENV)/bin/gandist train task=segment trainer=demo data.url=$(DEMO_DATA) run.name=demo \
	  run.storage=$(DEMO_STORE) model.g_width=32 model.d_width=32 data.batch_size=16 data.loader_workers=1

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/data.py --json bench/data.json
	$(PY) bench/checkpoint.py --json bench/checkpoint.json
	$(PY) bench/evaluation.py --json bench/evaluation.json

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_STORE)/demo
