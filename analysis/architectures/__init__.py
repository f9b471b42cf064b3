"""Architectures whose module names match published checkpoint files, and the key fixes that make them load strict."""
