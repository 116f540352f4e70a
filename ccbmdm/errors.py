"""The one base class of the failures a person can act on.

Every part raises its own kind (a project file that cannot be read, a store that does not
answer, a mapping with findings…), each with a message that says what went wrong, where and what
to do. The command line catches this base class once and prints the message with the kind's exit
code; anything else that escapes is a defect and reported as one.
"""

from __future__ import annotations


class CcbmdmError(Exception):
    """A failure explained by its message; ``exit_code`` is what the command line exits with."""

    exit_code = 1
