# Two commands do all the set-up on a fresh machine: `make figure-1` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
GRID   ?= reduced
# jax's CPU build comes too (the extra `jax`), so `make test` tests the JAX engine (repro.engine_jax).
# TensorFlow's build: the CUDA one (DEVICE=gpu) when `nvidia-smi -L` lists a GPU, else the CPU
# one; `make figure-1 DEVICE=gpu` (or cpu) chooses. The stamp names the build, so a switch
# reinstalls; the two builds write the same `tensorflow` package, so the other is removed first.
NVIDIA_SMI ?= nvidia-smi
ifndef DEVICE
DEVICE := $(shell $(NVIDIA_SMI) -L 2>/dev/null | grep -q '^GPU [0-9]' && echo gpu || echo cpu)
endif
ifeq ($(filter cpu gpu,$(DEVICE)),)
$(error DEVICE must be cpu or gpu, got '$(DEVICE)')
endif
OTHER_TF := $(if $(filter gpu,$(DEVICE)),tensorflow-cpu,tensorflow)
OTHER_DEVICE := $(if $(filter gpu,$(DEVICE)),cpu,gpu)
STAMP  := $(VENV)/.installed-$(DEVICE)

# Figures with a spec; a static pattern rule, because make skips implicit rules for .PHONY targets.
FIGURES := $(shell ls specs/figure-*.toml | sed 's|specs/||; s|\.toml||' | sort -t- -k2 -n)

.PHONY: venv data figures $(FIGURES) $(DECIDE) report report-check test test-fast clean-results

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	rm -f $(VENV)/.installed-*
	$(BIN)/pip uninstall -q -y $(OTHER_TF) 2>/dev/null || true
	$(BIN)/pip install -q -e '.[$(DEVICE),test,jax]'
	@echo "installed TensorFlow's $(DEVICE) build into $(VENV) (switch: make venv DEVICE=$(OTHER_DEVICE))"
	touch $@

venv: $(STAMP)

# Fashion-MNIST ships as Debian's dataset-fashion-mnist; netcdf-bin provides ncdump.
/usr/share/datasets/fashion-mnist:
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist netcdf-bin >/dev/null; \
	else echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' (or 'python -m repro data fetch fashion_mnist --from DIR')"; fi

data: venv /usr/share/datasets/fashion-mnist
	$(BIN)/python -m repro data fetch mnist fashion_mnist
	-$(BIN)/python -m repro data status

# run, plot, verify (each only if the one before succeeded), then `repro summary`: verdict
# counts, where the figure, results and report are, the wall time and what the exit status
# (the first failing step's) means. The target exits with that status.
$(FIGURES): figure-%: data
	@start=$$(date +%s); status=0; step=run; \
	$(BIN)/python -m repro run specs/figure-$*.toml --grid $(GRID) || status=$$?; \
	if [ $$status = 0 ]; then step=plot; \
	  $(BIN)/python -m repro plot specs/figure-$*.toml --grid $(GRID) || status=$$?; fi; \
	if [ $$status = 0 ]; then step=verify; \
	  $(BIN)/python -m repro verify specs/figure-$*.toml --grid $(GRID) || status=$$?; fi; \
	echo; $(BIN)/python -m repro summary specs/figure-$*.toml --grid $(GRID) \
	  --seconds $$(( $$(date +%s) - start )) --status $$status --step $$step; \
	exit $$status

# `make decide-1 BUDGET=2`: after `make figure-1`, spend up to BUDGET hours where a claim of
# Figure 1 is still INCONCLUSIVE (repro decide); what it adds becomes the spec's grid `decided`.
BUDGET ?= 1
DECIDE := $(FIGURES:figure-%=decide-%)
$(DECIDE): decide-%: data
	$(BIN)/python -m repro decide specs/figure-$*.toml --grid $(GRID) --budget $(BUDGET)

# Every reduced figure with data here, in order (later figures re-read the runs earlier ones
# share with them); panels whose dataset is missing are NOT-RUN, and a figure with none of its
# datasets is skipped, each with the command that gets the data.
figures: data
	@status=0; for f in $(FIGURES); do \
	  if $(BIN)/python -m repro data ready specs/$$f.toml; then $(MAKE) --no-print-directory $$f || status=1; \
	  else echo "$$f: skipped (no dataset it uses is here, see above)"; fi; done; exit $$status

# One page with every figure, verdict, interval, paper number and provenance, from the stored
# results (never trains): report/index.html (static, opens from disk) and report/report.md.
# Exit 1 if a claim fails, 2 if a results file is not current (the page says how to rebuild it).
report: venv
	$(BIN)/python -m repro report specs --grid $(GRID) --out report

# Look at the page as a reader would: headless Chromium renders it to report/index.png.
REPORT_SIZE ?= 1280,4000
report-check: venv
	-$(BIN)/python -m repro report specs --grid $(GRID) --out report
	@test -f report/index.html
	@command -v chromium >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: run 'sudo apt-get install chromium'"; exit 1; fi; }
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	  --disable-background-networking --disable-component-update --disable-sync \
	  --user-data-dir=$$(mktemp -d) --screenshot=$(CURDIR)/report/index.png \
	  --window-size=$(REPORT_SIZE) file://$(CURDIR)/report/index.html 2>/dev/null
	@echo "look at report/index.png (the top $(REPORT_SIZE) pixels of the page; REPORT_SIZE=1280,12000 for more)"

# The CI run of Figure 1(b) (tests/test_figure1_ci.py: training on both cores) starts first, in
# the background, followed there by the benchmark tests (the next longest); the other tests,
# mostly one thread each, run beside them. Their output follows, with what the passing ones
# printed (-rP: Figure 1(b)'s verdicts, the benchmark's numbers); the target fails if either
# stream fails.
CI_FIGURE := tests/test_figure1_ci.py
BACKGROUND := $(CI_FIGURE) tests/test_bench.py
test: data
	@log=$$(mktemp); $(BIN)/python -m pytest -q -rP --durations=5 -p no:cacheprovider $(BACKGROUND) >$$log 2>&1 & ci=$$!; \
	$(BIN)/python -m pytest -q --durations=25 $(BACKGROUND:%=--ignore=%) tests; rest=$$?; \
	wait $$ci; figure=$$?; echo; echo "== $(BACKGROUND) (ran beside the tests above) =="; cat $$log; rm -f $$log; \
	test $$rest = 0 && test $$figure = 0

test-fast: data
	$(BIN)/python -m pytest -q -m "not slow" tests

clean-results:
	rm -rf results figures
