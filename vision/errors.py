"""The one root of every error that carries a stable machine code and a message for people.

A leaf says in its docstring when it happens and lists in ``codes`` every code it can
carry; what a code becomes is declared once, by the layer that shows it: the HTTP status in
api/errors.py (``HTTP_STATUS``), the job's error code in worker/failures.py
(``JOB_ERROR_CODES``). A unit test checks that each table covers the codes of the leaves it
serves, so no code falls to a silent default.

This module imports only the standard library, so models/ may import it too (the one
exception to "models/ imports nothing of ours": it is the shape errors share, not logic).
"""

from __future__ import annotations

from typing import ClassVar


class CodedError(Exception):
    """An error with ``code`` (stable, for programs) and ``message`` (what to do next)."""

    # Every code this class can carry; a leaf whose codes are built at run time (e.g.
    # ``gemini_<status>``) lists the prefix in ``code_prefixes`` instead.
    codes: ClassVar[frozenset[str]] = frozenset()
    code_prefixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def carries(cls, code: str) -> bool:
        """Whether ``code`` is one this class declares (exactly or by prefix)."""
        return code in cls.codes or code.startswith(cls.code_prefixes)


class FixedCodeError(CodedError):
    """A leaf with exactly one code (its ``codes``), raised like a plain exception, with its
    message only: ``Leaf(message)``."""

    def __init__(self, message: str = "") -> None:
        (code,) = type(self).codes
        super().__init__(code, message)
