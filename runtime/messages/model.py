"""The base of every generated contract model."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class ContractModel(BaseModel):
    """An immutable, validated message or part of one.

    Built by the generated codec (which has already enforced every facet) or by code such as a
    mapping, in which case pydantic runs the same facet checks through the field types.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_default=False,
        # The codecs build models without pydantic's validator; a model builds its validator
        # when code first constructs or validates one, rather than every model at import.
        defer_build=True,
        hide_input_in_errors=True,  # an error's text never carries what was refused
    )
    # The fields whose values are personal data, as the contracts mark them (everything inside
    # such a field is personal too): what a stored reason, a log line or a fault never quotes.
    personal_fields: ClassVar[frozenset[str]] = frozenset()
