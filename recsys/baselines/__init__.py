"""Baselines every model must beat, evaluated by the same code on the same split."""
