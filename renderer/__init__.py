"""Doppel: a headless face-swap render node. Every output is labelled synthetic media."""

__version__ = "0.1.0"
