# demotrace: two commands on a fresh Debian/Ubuntu machine: `make demo` and `make test`.
# System packages are installed with apt-get when run as root; otherwise the exact command is shown.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# program -> Debian package
SYS_TOOLS := Xvfb:xvfb xdotool:xdotool xdpyinfo:x11-utils jwm:jwm xterm:xterm xinput:xinput \
             chromium:chromium
SYS_PKGS  := xvfb xdotool x11-utils jwm xterm xinput python3-tk python3-venv \
             python3-pyatspi python3-gi gir1.2-gtk-3.0 at-spi2-core dbus-x11 chromium postgresql

.PHONY: setup sysdeps demo test lint bench clean

setup: sysdeps $(VENV)/.installed

sysdeps:
	@missing=""; \
	for pair in $(SYS_TOOLS); do prog=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$prog >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	$(PYTHON) -c "import tkinter" >/dev/null 2>&1 || missing="$$missing python3-tk"; \
	$(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	/usr/bin/python3 -c "import pyatspi, gi" >/dev/null 2>&1 || missing="$$missing python3-pyatspi"; \
	command -v dbus-launch >/dev/null 2>&1 || missing="$$missing dbus-x11"; \
	{ command -v initdb || ls /usr/lib/postgresql/*/bin/initdb; } >/dev/null 2>&1 \
	  || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYS_PKGS) >/dev/null; \
	  else \
	    echo "Missing system packages:$$missing"; \
	    echo "Run: sudo apt-get install -y --no-install-recommends $(SYS_PKGS)"; exit 1; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

demo: setup
	$(BIN)/demotrace demo

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) demo-out bench/out
