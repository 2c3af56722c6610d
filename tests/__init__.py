"""The test suite; a package so that its fixture modules import as `tests.fixtures.*`."""
