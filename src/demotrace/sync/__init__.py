"""Uploading recordings to a collector (docs/collector.md)."""
