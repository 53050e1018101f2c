"""The package's version: one place, read by pyproject.toml and sent in every hello."""

__version__ = "0.2.0"
