"""The local web replay viewer over a built dataset (``demotrace view``, see ``docs/viewer.md``)."""
