"""A mapping page shows each target field's rule as the mapping writes it, found from the
``file:line:col`` the compiler's lineage records."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccbmdm.codegen.lineage import written
from ccbmdm.docsite.mappings import page

MAPPING = """\
rules:
  externalId: saId   # the SA's id
  usType: {table: OUCCB2_OUMDM2_USType, key: [saType, cisDivision]}
  endDateTime: {fn: start_of_day,
                args: [endDate, timeZone], when: endDate}
  status:
    table: OUCCB2_OUMDM2_Status
    key: saStatus   # as CCB keeps it
  usageGroups:
    each: rateHistory
    rules:
      usageGroupExternalId: rateSchedule
"""


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        (2, "saId"),
        (3, "{table: OUCCB2_OUMDM2_USType, key: [saType, cisDivision]}"),
        (4, "{fn: start_of_day, args: [endDate, timeZone], when: endDate}"),
        (6, "table: OUCCB2_OUMDM2_Status; key: saStatus"),
        (9, "each: rateHistory"),
        (12, "rateSchedule"),
    ],
)
def test_the_rule_is_shown_as_written(tmp_path: Path, line: int, rule: str) -> None:
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    assert written(tmp_path, f"m.yaml:{line}:3") == rule


def test_a_rule_in_a_file_that_has_changed_since_shows_nothing(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    assert written(tmp_path, "m.yaml:99:3") == ""
    assert written(tmp_path, "gone.yaml:2:3") == ""


def test_the_page_lists_unread_source_fields_and_those_listed_under_unread(
    tmp_path: Path,
) -> None:
    lineage = {
        "flow": "PERSON_SYNC",
        "part": "request",
        "source": "ccb/PersonSyncRequest",
        "target": "mdm/ContactSyncRequest",
        "fields": {},
        "unread_sources": ["person.language"],
        "declared_unread": ["person.personId"],
    }
    text = page(tmp_path, "mappings/person-sync.request.yaml", lineage, {}, [])
    unread = text.split("## Source fields no rule reads\n\n", 1)[1].split("\n\n", 1)[0]
    assert unread.splitlines() == [
        "- `person.language`",
        "- `person.personId` (listed under `unread:`)",
    ]
