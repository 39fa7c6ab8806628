# Set-up and checks. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
RUN_STAMP := $(VENV)/.installed
BROKER_DIR := .broker

.PHONY: demo test check lint typecheck unit bench broker-start broker-stop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

# Run the main job: a small service fleet on the in-process transport,
# or on the broker that LEVERET_URL names.
demo: $(RUN_STAMP)
	$(BIN)/leveret demo

# Every check and test. The test suite starts its own RabbitMQ (installing the
# Debian package when missing) unless LEVERET_TEST_AMQP_URL names one.
test: check
	scripts/run-tests

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Tests only, without a broker: the core and the in-process transport.
unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP)
	scripts/run-bench

broker-start:
	scripts/rabbitmq-start $(BROKER_DIR)

broker-stop:
	scripts/rabbitmq-stop $(BROKER_DIR)

clean:
	rm -rf $(VENV) $(BROKER_DIR) .mypy_cache .pytest_cache .ruff_cache
