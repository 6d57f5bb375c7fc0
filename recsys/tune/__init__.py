"""Budgeted hyper-parameter search (Optuna TPE) over a typed search space; the objective is the caller's."""
