"""Browser context: the Chromium extension in ``extension/`` and the recorder's local channel.

The contract between them is docs/browser.md. ``EXTENSION_DIR`` is the repository's
``extension/`` folder, found from this package's place in a source checkout
(``src/demotrace/browser/`` -> three folders up). The extension is not Python and is not inside
the package: an installed wheel does not carry it, and :func:`extension_dir` says so.
"""

from __future__ import annotations

from pathlib import Path

from demotrace.errors import BrowserError

__all__ = ["EXTENSION_DIR", "EXTENSION_ID", "BrowserError", "extension_dir"]

#: Fixed by the public ``key`` in extension/manifest.json.
EXTENSION_ID = "bhjogdggoepdpnhlbglpmmmbpopdbpba"

#: The source checkout's extension/ folder (it may not exist: see :func:`extension_dir`).
EXTENSION_DIR = Path(__file__).resolve().parents[3] / "extension"


def extension_dir() -> Path:
    """:data:`EXTENSION_DIR`, or :class:`BrowserError` when this installation lacks it."""
    if not (EXTENSION_DIR / "manifest.json").is_file():
        raise BrowserError(
            f"The browser extension is not in {EXTENSION_DIR}: it ships with demotrace's source "
            "checkout (the folder extension/ next to src/), not inside an installed package. "
            "Clone the repository and install demotrace from it (pip install -e .), or load the "
            "extension/ folder of a checkout of the same version."
        )
    return EXTENSION_DIR


__all__ = ["EXTENSION_DIR", "EXTENSION_ID", "BrowserError", "extension_dir"]
