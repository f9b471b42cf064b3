"""Inceptionism Lab: DeepDream and layer analysis, as a library (no UI code here)."""

# 0.3: polyphase stem gradient, layout-keeping objectives; 0.2: BatchNorms folded, channels_last.
# Each moves float32 rounding, so replays of older recipes differ slightly (dreams are chaotic).
__version__ = "0.3.0"
