# prodgraph: `make demo` runs the main job on the bundled example, `make test` runs lint, then every test.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
VALIDATOR := tools/gltf-validator/node_modules/.installed
EXAMPLE := examples/red_cube_blue_cylinder.step

.PHONY: install demo test lint clean

install: $(INSTALLED) $(VALIDATOR)

$(INSTALLED): pyproject.toml scripts/install-system-packages.sh
	bash scripts/install-system-packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

$(VALIDATOR): tools/gltf-validator/package.json tools/gltf-validator/package-lock.json
	cd tools/gltf-validator && npm ci --no-audit --no-fund --silent
	touch $@

demo: install
	$(BIN)/prodgraph render $(EXAMPLE) --out out/demo --width 800 --height 600 --samples 32

test: lint
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	-$(BIN)/prodgraph server stop
	rm -rf out .state .pytest_cache
