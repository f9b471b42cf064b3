"""Inceptionism Lab: DeepDream and layer analysis, as a library (no UI code here)."""

__version__ = "0.2.0"  # 0.2: BatchNorms folded, channels_last: replays of 0.1 recipes differ slightly
