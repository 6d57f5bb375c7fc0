"""Logs -> validated, id-mapped, split tables (polars). Light: no torch here."""
