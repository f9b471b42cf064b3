"""A model's weights: where the file is (locate), fetching it (downloads), reading it safely (checkpoint)."""
