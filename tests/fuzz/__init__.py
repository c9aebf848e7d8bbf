"""The fuzzing suite: generated bad inputs for every entry point (see fuzzlib.py, conftest.py)."""
