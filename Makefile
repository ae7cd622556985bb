# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SIM_PORT ?= 8189

.PHONY: run test lint demo fleet-demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

## run: start the gateway under gunicorn (gevent worker) with local-disk storage
run: $(VENV)/.installed
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## test: run the whole suite (starts the simulator and every server it needs itself)
test: $(VENV)/.installed
	$(BIN)/python -m pytest

## lint: ruff and mypy
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## demo: the ComfyUI simulator and the gateway together; no GPU needed
demo: $(VENV)/.installed
	@echo "ComfyUI simulator on :$(SIM_PORT); gateway on :$${FLASK_PORT:-5000}"
	@echo "Playground: http://localhost:$${FLASK_PORT:-5000}/"
	@echo "Try: curl -s -X POST localhost:$${FLASK_PORT:-5000}/api/generate_file -H 'Content-Type: application/json' -d '{\"workflow\": \"demo_invert\"}' -o demo.png"
	@$(BIN)/python -m comfysync.simulator --port $(SIM_PORT) & sim=$$!; \
	trap "kill $$sim" EXIT INT TERM; \
	COMFYUI_URL=http://127.0.0.1:$(SIM_PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## fleet-demo: two gateway instances over one Redis, two simulated ComfyUIs (no Docker needed)
fleet-demo: $(VENV)/.installed
	$(BIN)/python -m comfysync.simulator.fleet --servers 2 --instances 2 --port $${FLASK_PORT:-5000}

## bench: benchmarks against the simulator; results under bench/results/
bench: $(VENV)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
