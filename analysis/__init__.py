"""Inceptionism Lab: DeepDream and layer analysis, as a library (no UI code here)."""

__version__ = "0.1.0"
