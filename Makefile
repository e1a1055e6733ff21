# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := out/demo
DEMO_DB := sqlite:///$(abspath $(DEMO_DIR))/blobs.db
BLOBFLOW := $(BIN)/blobflow -p pipelines/blobs --database $(DEMO_DB)

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,plot]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p $(DEMO_DIR)
	$(BLOBFLOW) init
	$(BLOBFLOW) insert Image pipelines/blobs/inserts/images.yaml --skip-duplicates
	$(BLOBFLOW) populate detection --jobs 2
	$(BLOBFLOW) query "Detection"
	$(BLOBFLOW) query "Detection & num_blobs < 300"
	$(BLOBFLOW) query "(Image * Detection).proj(image_name, num_blobs)"
	$(BLOBFLOW) insert SelectedDetection pipelines/blobs/inserts/selections.yaml --skip-duplicates
	$(BLOBFLOW) query "SelectedDetection * Detection"
	$(BLOBFLOW) status
	@echo "The demo database is $(DEMO_DIR)/blobs.db (schema file $(DEMO_DIR)/blobs.tutorial_blobs.db)."
	$(BLOBFLOW) diagram --out $(DEMO_DIR)/diagram.png
	$(BLOBFLOW) diagram --out $(DEMO_DIR)/diagram.mmd
	$(BLOBFLOW) view blobs --out $(DEMO_DIR)/blobs.png
	@echo "The pipeline diagram is $(DEMO_DIR)/diagram.png (Mermaid: $(DEMO_DIR)/diagram.mmd); the detected blobs are drawn in $(DEMO_DIR)/blobs.png."

test: $(STAMP)
	$(BIN)/ruff check blobflow tests bench
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check blobflow tests bench
	$(BIN)/ruff format --check blobflow tests bench

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf out .pytest_cache .ruff_cache .hypothesis
