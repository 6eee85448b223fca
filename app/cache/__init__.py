"""Answers served again without calling the model."""
