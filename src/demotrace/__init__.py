"""demotrace: consent-first recording of computer work for computer-use agent datasets."""

__version__ = "0.1.0"
