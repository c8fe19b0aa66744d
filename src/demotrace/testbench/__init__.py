"""The virtual-desktop test bench: scripted, human-like work with exact ground truth.

- :mod:`.desktop` ``VirtualDesktop``: a private Xvfb + jwm display, programs launched on it.
- :mod:`.workbench`: a Tk app whose layout file gives every widget's and popup's screen box.
- :mod:`.worker` ``ScriptedWorker``: XTEST input with human timing, one ground-truth line per
  action.
- :mod:`.scenarios`: TOML task scripts (``demotrace/scenarios``) and ``run_scenario``.

Nothing here touches X at import time.
"""
