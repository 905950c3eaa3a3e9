# Sluice: the only entry points a newcomer needs.
#   make run    the appliance on the lab's SPAN port (SECONDS=60), live status, then a summary
#   make test   the whole suite (what CI runs)
#   make bench  Sluice and its peers side by side
#   make soak   the supervisor under the lab's flood at half the measured ceiling (SOAK_SECONDS=3600)
#   make native the C programs in native/build/
#   make image  the bootable appliance image in image/out/; make image-test boots it under qemu
#   make bundle a signed update bundle of it; make image-update-test the A/B update cycle in qemu

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SLUICE := $(VENV)/bin/sluice
PYTEST := $(VENV)/bin/pytest
SECONDS ?= 60
SOAK_SECONDS ?= 3600
STAMPS := .stamps

.PHONY: run test test-slow bench soak native deps venv bytecode lint clean corpus

$(STAMPS)/deps: $(wildcard deps/apt/*.txt) scripts/install-deps
	@mkdir -p $(STAMPS)
	scripts/install-deps
	@touch $@

deps: $(STAMPS)/deps

# editable_mode=compat: the tree's path in a .pth file, not setuptools' import hook, which imports
# pathlib and importlib.util at the start of every Python program of the venv (12 ms of each
# `sluice extract`, whose speed bench_extract measures: issue 14). The Makefile is a prerequisite
# so that a change of this recipe reaches existing venvs (a re-run takes seconds).
EDITABLE := --config-settings editable_mode=compat
$(STAMPS)/venv: pyproject.toml $(STAMPS)/deps Makefile
	@mkdir -p $(STAMPS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]' $(EDITABLE)
	@touch $@

venv: $(STAMPS)/venv

# Bytecode of the tree's Python, as the package's postinst compiles it on a box: a program run
# with PYTHONDONTWRITEBYTECODE (or the package's -B) still reads it, and otherwise compiles every
# module at every start (a quarter of a `sluice extract`'s time, issue 14). compileall redoes
# only what changed, so this runs before every run and bench.
bytecode: $(STAMPS)/venv
	$(VENV)/bin/python -m compileall -q -j0 appliance bench >/dev/null

native: $(STAMPS)/deps
	flock /tmp/sluice-native.lock $(MAKE) -C native

run: venv native bytecode
	$(SLUICE) run --seconds $(SECONDS)

# The pcap corpus of tcpdump's and libpcap's own tests (tests/pcaptool/test_corpus.py), from
# Debian's source packages into /var/cache/sluice-test/corpus; cached, so a second run costs nothing.
corpus: $(STAMPS)/deps
	scripts/fetch-pcap-corpus

test: venv native bytecode lint corpus
	$(PYTEST) -m "not slow" --reruns 1 --durations=15 tests

# pytest exits 5 when no test is selected: no test marked slow is not a failure.
test-slow: venv native corpus
	$(PYTEST) -m slow tests || { rc=$$?; [ $$rc -eq 5 ] && echo "test-slow: no test is marked slow"; [ $$rc -eq 5 ]; }

bench: venv native bytecode
	$(VENV)/bin/python -m bench

# Not part of `make test`: an hour by default (report in /var/tmp/sluice-soak/LAB/).
$(STAMPS)/soak-venv: pyproject.toml $(STAMPS)/venv
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev,soak]' $(EDITABLE)
	@touch $@

soak: venv native $(STAMPS)/soak-venv
	SOAK_SECONDS=$(SOAK_SECONDS) $(VENV)/bin/python -m bench.soak

# Every Python file (ruff) and every shell script (shellcheck: executable files with a sh or bash
# shebang; warnings and errors, style notes left to the author).
SHELL_SCRIPTS = $(shell find . \( -name .git -o -name .venv -o -path ./build -o -path ./native/build -o -path ./image/out \) -prune -o \
    -type f -perm -u+x ! -name '*.j2' -print | xargs grep -lE '^\#!(/usr/bin/env |/bin/)(ba|da)?sh$$') \
    $(wildcard debian/*.postinst debian/*.postrm debian/*.preinst debian/*.prerm)

lint: venv
	$(VENV)/bin/ruff check .
	shellcheck --severity=warning $(SHELL_SCRIPTS)

# What provisioning/ installs on a box: the sluice-appliance package (and the wheels it was made of).
# The Debian package (docs/package.md): build/deb/sluice-appliance_VERSION_ARCH.deb and lintian's report.
.PHONY: deb man
deb: venv native
	scripts/install-deps deps/apt/package.txt
	packaging/build-deb

# Man pages and bash completion from the programs' --help, into build/man, build/completion.
man: venv native
	$(VENV)/bin/python packaging/gendocs.py --out build --version $$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml) \
	    --sluice $(SLUICE) --capture native/build/sluice-capture --pcap native/build/sluice-pcap

.PHONY: provisioning-artifacts image image-test bundle image-update-test
provisioning-artifacts: deb

# Image-only packages (qemu, grub, mmdebstrap) are not in deps/apt: `make test` does not need them.
image: provisioning-artifacts
	scripts/install-deps deps/apt-image/image.txt
	image/build

# Boots the image already built (builds one first if there is none).
image-test: $(if $(wildcard image/out/root.ext4),,image)
	scripts/install-deps deps/apt-image/image.txt
	image/boot-test

# A signed RAUC bundle of the root filesystem `make image` built (docs/image.md: updates).
bundle: $(if $(wildcard image/out/root.ext4),,image)
	scripts/install-deps deps/apt-image/image.txt
	image/bundle

# The A/B update and rollback cycle under qemu (OVMF + GRUB); not part of `make test`.
image-update-test: $(if $(wildcard image/out/disk.img),,image)
	scripts/install-deps deps/apt-image/image.txt
	image/update-test

clean:
	$(MAKE) -C native clean
	rm -rf $(STAMPS)
