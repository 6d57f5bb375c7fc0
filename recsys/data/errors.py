"""Errors for inputs that cannot be read at all (as opposed to bad rows, which are quarantined)."""

from __future__ import annotations


class DataError(ValueError):
    """A source file cannot be used. The message names the file, the column/row and what to do."""

    def __init__(self, path: object, problem: str, *, column: str | None = None, row: int | None = None,
                 hint: str | None = None) -> None:
        where = str(path)
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column '{column}'"
        msg = f"{where}: {problem}"
        if hint:
            msg += f" {hint}"
        super().__init__(msg)
        self.path, self.column, self.row, self.problem = str(path), column, row, problem
