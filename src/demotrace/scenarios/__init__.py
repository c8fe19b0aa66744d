"""Scenario files (``*.toml``): scripted tasks for the test bench; see testbench.scenarios."""
