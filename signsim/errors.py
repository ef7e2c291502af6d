"""The package's own exceptions."""

from __future__ import annotations

import os

__all__ = ["SignsimFileError"]


class SignsimFileError(ValueError):
    """A file that is not a valid signsim file (damaged, forged, or of another program).

    Its message always names the file and what is wrong with it, as
    ``"<path>: <problem>"``. A ``ValueError``, so code that caught the ``ValueError`` of
    earlier versions still catches it.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    problem : str
        What is wrong with it, in words.

    Attributes
    ----------
    path : str
    problem : str
    """

    def __init__(self, path, problem: str):
        self.path = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # pickles (e.g. from a worker process) with both arguments
        return type(self), (self.path, self.problem)
