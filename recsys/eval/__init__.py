"""Evaluation and report: every system on the same split, metrics, slices and plots."""
