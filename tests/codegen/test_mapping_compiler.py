"""The mapping compiler: every static check, with its message, line and column, and the
transformer's run-time failures, located in the mapping."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from ccbmdm.codegen import compiler
from ccbmdm.codegen.diagnostics import Finding
from ccbmdm.codegen.loader import load_contracts, load_package
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.messages.functions import FUNCTIONS
from ccbmdm.runtime.messages.mapping import CodeTables, Context, TransformError
from support import REPO, sample

PERSON = textwrap.dedent("""\
    flow: PERSON_SYNC
    part: request
    source: ccb/PersonSyncRequest
    target: mdm/ContactSyncRequest
    use: [sync-request-header]
    rules:
      contact:
        from: person
        rules:
          contactType: {table: OUCCB2_OUMDM2_ContactType, key: personOrBusiness}
          name: entityName
          phone: phoneNumber
          language: language
          address:
            from: address
            rules:
              address1: address1
              city: city
              postal: postal
              country: {table: OUCCB2_OUMDM2_Country, key: country}
    """)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project with the reference contracts and tables and only the mappings a test writes."""
    shutil.copytree(REPO / "contracts", tmp_path / "contracts")
    (tmp_path / "mappings" / "fragments").mkdir(parents=True)
    shutil.copytree(REPO / "mappings" / "tables", tmp_path / "mappings" / "tables")
    shutil.copy(REPO / "mappings" / "mapping.schema.json", tmp_path / "mappings")
    for fragment in ("sync-request-header", "sync-ack"):
        shutil.copy(
            REPO / "mappings" / "fragments" / f"{fragment}.yaml",
            tmp_path / "mappings" / "fragments",
        )
    shutil.copy(REPO / "ccbmdm_project.yaml", tmp_path)
    return Project.load(tmp_path)


def write(project: Project, name: str, text: str) -> None:
    (project.mappings / name).write_text(text)


def findings(project: Project) -> list[Finding]:
    try:
        return list(compiler.generate(project).findings)
    except compiler.MappingError as exc:
        return exc.findings


def the(found: list[Finding], rule: str) -> Finding:
    matching = [f for f in found if f.rule == rule]
    assert len(matching) == 1, [str(f) for f in found]
    return matching[0]


def where(finding: Finding) -> tuple[str, int, int]:
    return finding.pos.file, finding.pos.line, finding.pos.column


def test_a_correct_mapping_compiles_and_transforms(project: Project) -> None:
    write(project, "person-sync.request.yaml", PERSON)
    build = compiler.generate(project)
    assert not [f for f in build.findings if f.severity == "error"]
    package = load_package(project)
    transformer = package.TRANSFORMERS[("PERSON_SYNC", "request")]
    registry = load_contracts(project)
    _, message = registry.decode(sample("ccb/PersonSyncRequest"))
    contact = transformer.function(message, Context(CodeTables.load(project.mappings / "tables")))
    assert contact.contact.contact_type == "PERSON"
    assert contact.contact.address.country == "US"
    assert contact.target_mo == "D1-CONTACT"
    header = message.message_header  # type: ignore[attr-defined]
    assert contact.message_header is header  # an equal type is shared, not copied


def test_unmapped_required_element(project: Project) -> None:
    write(project, "person-sync.request.yaml", PERSON.replace("      name: entityName\n", ""))
    finding = the(findings(project), "unmapped-required")
    assert where(finding) == ("mappings/person-sync.request.yaml", 8, 5)
    assert finding.message == "required element <name> of /ContactSyncRequest/contact is not mapped"


def test_unknown_source_path_suggests_the_name(project: Project) -> None:
    write(
        project, "person-sync.request.yaml", PERSON.replace("name: entityName", "name: entityNme")
    )
    finding = the(findings(project), "unknown-source-path")
    assert where(finding) == ("mappings/person-sync.request.yaml", 11, 13)
    assert finding.message == "PersonType (<the current node>) has no element <entityNme>"
    assert finding.hint == "did you mean entityName?"


def test_unknown_target_element_suggests_the_name(project: Project) -> None:
    write(
        project,
        "person-sync.request.yaml",
        PERSON.replace("      phone: phoneNumber", "      phne: phoneNumber"),
    )
    finding = the(findings(project), "unknown-target")
    assert where(finding) == ("mappings/person-sync.request.yaml", 12, 7)
    assert (finding.message, finding.hint) == (
        "<phne> is not an element of ContactType",
        "did you mean phone?",
    )


def test_text_into_a_number_is_a_type_mismatch(project: Project) -> None:
    write(
        project, "person-sync.request.yaml", PERSON + "  entityVersion: sendDetails.syncRequestId\n"
    )
    found = findings(project)
    duplicate = the(found, "duplicate-target")  # the fragment writes entityVersion too
    assert duplicate.message == "<entityVersion> is also written by fragment sync-request-header"
    write(
        project,
        "person-sync.request.yaml",
        PERSON.replace(
            "      language: language", "      language: language\n      name: /entityVersion"
        ).replace("      name: entityName\n", ""),
    )
    finding = the(findings(project), "type-mismatch")
    assert where(finding) == ("mappings/person-sync.request.yaml", 13, 13)
    assert (
        finding.message
        == "<name> takes a string (TextType), but the rule gives a integer (EntityVersionType)"
    )


SA = textwrap.dedent("""\
    flow: SA_SYNC
    part: request
    source: ccb/ServiceAgreementSyncRequest
    target: mdm/UsageSubscriptionSyncRequest
    use: [sync-request-header]
    rules:
      usageSubscription:
        from: serviceAgreement
        rules:
          externalId: saId
          externalAccountId: accountId
          usType: {table: OUCCB2_OUMDM2_USType, key: [saType, cisDivision]}
          division: cisDivision
          startDateTime: startDate
          status: {const: ACTIVE}
          mainContactExternalId: {const: "123"}
          summaryBilled: summaryBilled
          usageGroups:
            each: rateHistory
            rules:
              usageGroupExternalId: rateSchedule
              startDateTime: {fn: start_of_day, args: [effectiveDate, /serviceAgreement.timeZone]}
          servicePoints:
            each: spLinks
            rules:
              spExternalId: /serviceAgreement.spLinks.spId
              startDateTime: startDateTime
    """)


def test_date_into_date_time_needs_a_conversion(project: Project) -> None:
    write(project, "sa-sync.request.yaml", SA)
    finding = the(findings(project), "type-mismatch")
    assert where(finding) == ("mappings/sa-sync.request.yaml", 14, 22)
    assert (
        finding.message
        == "<startDateTime> takes a dateTime (DateTimeType), but the rule gives a date (DateType)"
    )
    assert finding.hint == "convert it, e.g. {fn: start_of_day, args: [date, timeZone]}"


def test_constant_that_breaks_a_facet(project: Project) -> None:
    write(project, "sa-sync.request.yaml", SA.replace("{const: ACTIVE}", "{const: RUNNING}"))
    found = [f for f in findings(project) if f.rule == "facet-violation"]
    assert [(where(f)[1:], f.message) for f in found] == [
        ((15, 15), "constant 'RUNNING': 'RUNNING' is not one of ACTIVE, INACTIVE"),
        ((16, 30), "constant '123': '123' does not match the pattern [0-9]{10}"),
    ]


def test_repeating_source_into_one_value_needs_a_policy(project: Project) -> None:
    write(project, "sa-sync.request.yaml", SA)
    finding = the(findings(project), "list-into-single")
    assert where(finding) == ("mappings/sa-sync.request.yaml", 26, 25)
    assert finding.message == "the source repeats but <spExternalId> takes one value"
    assert finding.hint == "add pick: first, last or only"


def add_table(project: Project, name: str, body: str) -> None:
    (project.mappings / "tables" / f"{name}.yaml").write_text(f"table: {name}\n{body}")


def test_table_coverage_unused_tables_and_pass_through(project: Project) -> None:
    add_table(
        project,
        "ChangeKind",
        "keys: [change]\nvalues: [kind]\nmiss: pass_through\nrows:\n  - {change: ADD, kind: ADD}\n  - {change: CHANGE, kind: CHANGE}\n",
    )
    add_table(project, "Nobody", "keys: [a]\nvalues: [b]\nmiss: fail\nrows:\n  - {a: x, b: y}\n")
    write(project, "person-sync.request.yaml", PERSON)
    fragment = project.mappings / "fragments" / "sync-request-header.yaml"
    fragment.write_text(
        fragment.read_text().replace(
            "  changeType: changeType", "  changeType: {table: ChangeKind, key: changeType}"
        )
    )
    found = findings(project)
    coverage = the(found, "table-coverage")
    assert where(coverage) == ("mappings/fragments/sync-request-header.yaml", 17, 40)
    assert coverage.message == "ChangeKind has no row for DELETE of <changeType>"
    unused = the([f for f in found if "Nobody" in f.message], "unused-table")
    assert (where(unused), unused.severity) == (("mappings/tables/Nobody.yaml", 1, 1), "warning")
    passing = the(found, "pass-through")
    assert (where(passing), passing.severity) == (
        ("mappings/tables/ChangeKind.yaml", 4, 1),
        "warning",
    )


def test_reversed_table_must_be_unique(project: Project) -> None:
    add_table(
        project,
        "Twice",
        "keys: [a]\nvalues: [b]\nmiss: fail\nrows:\n  - {a: x, b: same}\n  - {a: y, b: same}\n",
    )
    write(
        project,
        "person-sync.request.yaml",
        PERSON.replace(
            "{table: OUCCB2_OUMDM2_ContactType, key: personOrBusiness}",
            "{table: Twice, key: personOrBusiness, reverse: true}",
        ),
    )
    finding = the(findings(project), "reverse-not-unique")
    assert where(finding) == ("mappings/person-sync.request.yaml", 10, 20)
    assert finding.message == "Twice is used in reverse but its column b repeats same"


def test_unknown_table_and_function(project: Project) -> None:
    write(
        project,
        "person-sync.request.yaml",
        PERSON.replace("OUCCB2_OUMDM2_Country", "OUCCB2_OUMDM2_Contry").replace(
            "name: entityName", "name: {fn: concatenate, args: [entityName]}"
        ),
    )
    found = findings(project)
    assert the(found, "unknown-table").hint == "did you mean OUCCB2_OUMDM2_Country?"
    assert the(found, "unknown-function").hint == (
        f"did you mean concat? functions: {', '.join(sorted(FUNCTIONS))}"
    )


def test_schema_errors_point_at_the_unknown_key(project: Project) -> None:
    write(
        project,
        "person-sync.request.yaml",
        PERSON.replace("key: personOrBusiness}", "key: personOrBusiness, colum: x}"),
    )
    finding = the(findings(project), "schema")
    assert where(finding) == ("mappings/person-sync.request.yaml", 10, 78)
    assert str(finding).endswith("unknown key colum in a rule (did you mean column?)")


def failure_of(project: Project, before: bytes, after: bytes) -> TransformError:
    """How PERSON's transformer fails on the sample person with ``before`` made ``after``."""
    write(project, "person-sync.request.yaml", PERSON)
    package = load_package(project)
    registry = load_contracts(project)
    _, message = registry.decode(sample("ccb/PersonSyncRequest").replace(before, after))
    with pytest.raises(TransformError) as caught:
        package.TRANSFORMERS[("PERSON_SYNC", "request")].function(
            message, Context(CodeTables.load(project.mappings / "tables"))
        )
    return caught.value


def test_run_time_failure_names_rule_source_and_value(project: Project) -> None:
    failure = failure_of(
        project,
        b"<personOrBusiness>P</personOrBusiness>",
        b"<personOrBusiness>Q</personOrBusiness>",
    )
    assert str(failure) == (
        "mappings/person-sync.request.yaml:10:20: rule for /ContactSyncRequest/contact/contactType, "
        "reading /PersonSyncRequest/person/personOrBusiness = 'Q': "
        "code table OUCCB2_OUMDM2_ContactType has no row for 'Q'"
    )
    assert failure.code == 1101


def test_run_time_failure_on_personal_data_withholds_the_value(project: Project) -> None:
    """An address is personal data (the contracts mark AddressType): the rule, the source and
    the reason are named, the value is not, neither in the message nor in the fault's reason;
    an operator's local command may still show it (``unmasked``)."""
    failure = failure_of(project, b"<country>USA</country>", b"<country>XXA</country>")
    assert str(failure) == (
        "mappings/person-sync.request.yaml:20:20: rule for /ContactSyncRequest/contact/address/country, "
        "reading /PersonSyncRequest/person/address/country = ***: "
        "code table OUCCB2_OUMDM2_Country has no row for ***"
    )
    assert failure.reason == "code table OUCCB2_OUMDM2_Country has no row for ***"
    assert failure.unmasked().endswith(
        "country = 'XXA': code table OUCCB2_OUMDM2_Country has no row for 'XXA'"
    )
    assert failure.code == 1101


def test_lineage_records_what_each_target_reads(project: Project) -> None:
    write(project, "person-sync.request.yaml", PERSON)
    compiler.write(compiler.generate(project), compiler.output_dir(project))
    lineage = json.loads((project.target / "lineage.json").read_text())[
        "mappings/person-sync.request.yaml"
    ]
    assert lineage["fields"]["contact.contactType"] == {
        "sources": ["person.personOrBusiness"],
        "tables": ["OUCCB2_OUMDM2_ContactType"],
        "functions": [],
        "constants": [],
        "rule": "mappings/person-sync.request.yaml:10:7",
    }
    assert lineage["fields"]["targetMo"]["tables"] == ["OUCCB2_OUMDM2_MO"]
    assert "person.emailAddress" in lineage["unread_sources"]
    assert "person.entityName" not in lineage["unread_sources"]


class PersonToContact:
    """A cross-reference that knows one person."""

    def resolve(self, mo: str, key: str) -> str | None:
        return "C-000000418" if (mo, key) == ("PERSON", "0001234567") else None


def test_cross_reference_lookup(project: Project) -> None:
    write(
        project,
        "person-sync.request.yaml",
        PERSON.replace("name: entityName", "name: {xref: PERSON, key: personId}"),
    )
    package = load_package(project)
    registry = load_contracts(project)
    transform = package.TRANSFORMERS[("PERSON_SYNC", "request")].function
    tables = CodeTables.load(project.mappings / "tables")
    _, message = registry.decode(sample("ccb/PersonSyncRequest"))
    assert transform(message, Context(tables, xref=PersonToContact())).contact.name == "C-000000418"
    with pytest.raises(TransformError) as caught:
        transform(message, Context(tables))
    assert caught.value.code == 1102
    # the rule writes the contact's name, personal data: the value is withheld but for unmasked()
    assert "no cross-reference for PERSON ***" in str(caught.value)
    assert "no cross-reference for PERSON '0001234567'" in caught.value.unmasked()
