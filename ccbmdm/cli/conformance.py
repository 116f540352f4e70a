"""`ccbmdm conformance`: the project's golden cases, in process or against a deployment, with
coverage and mutation runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ccbmdm.cli import requires
from ccbmdm.cli.app import app, err, out
from ccbmdm.cli.failures import Failed, fail, report
from ccbmdm.cli.params import ProjectDir
from ccbmdm.codegen import report as reports
from ccbmdm.codegen.diagnostics import Finding
from ccbmdm.codegen.project import Project

if TYPE_CHECKING:
    from ccbmdm.conformance.against import Skipped
    from ccbmdm.conformance.cases import Case
    from ccbmdm.conformance.coverage import MappingCoverage
    from ccbmdm.conformance.mutants import Mutant
    from ccbmdm.conformance.outcome import Outcome
    from ccbmdm.conformance.runner import Kit


@app.command()
def conformance(
    flow: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only this flow's cases (PERSON_SYNC or person-sync); repeat for more flows."
        ),
    ] = None,
    case: Annotated[
        list[str] | None,
        typer.Option(help="Run only this case (its folder name or flow/case); repeat for more."),
    ] = None,
    keyword: Annotated[
        str | None,
        typer.Option(
            "-k", help="Run the cases whose id matches, as pytest -k: words, and, or, not."
        ),
    ] = None,
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="Rewrite the golden messages of the selected cases from what the mappings "
            "give now, and print what changed.",
        ),
    ] = False,
    output: Annotated[
        reports.Format,
        typer.Option(
            "--format",
            help="text, json (every case's result) or sarif (the malformed and failing cases "
            "as SARIF 2.1.0 findings, for code scanning).",
        ),
    ] = "text",
    junit: Annotated[
        Path | None, typer.Option(help="Also write a JUnit XML report to this file (for CI).")
    ] = None,
    coverage: Annotated[
        bool,
        typer.Option(
            "--coverage",
            help="Also report, per mapping, the rules and target fields no selected case "
            "exercises.",
        ),
    ] = False,
    fail_under: Annotated[
        float | None,
        typer.Option(
            "--fail-under",
            min=0,
            max=100,
            help="With --coverage: fail when the rules covered are below this percent.",
        ),
    ] = None,
    time_limit: Annotated[
        float | None,
        typer.Option(
            "--time-limit",
            min=0.001,
            help="Seconds a case may take before it is stopped and fails (default 30; a "
            "case's time_limit_s in case.yaml overrides it).",
        ),
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            envvar="CCBMDM_AGAINST",
            help="Run the cases against the bridge at this base URL (a deployment) instead of "
            "the in-process build: the kit posts each input and takes the delivered messages "
            "as CCB and MDM (see --receive).",
        ),
    ] = None,
    receive: Annotated[
        str,
        typer.Option(
            "--receive",
            help="With --against: host:port where the kit takes deliveries, as CCB at /ccb and "
            "MDM at /mdm (port 0: any free port, printed).",
        ),
    ] = "127.0.0.1:0",
    as_ccb: Annotated[
        str | None,
        typer.Option(
            "--as-ccb",
            envvar="CCBMDM_AGAINST_AS_CCB",
            help="With --against: the credential the kit presents to the bridge as CCB: "
            "token_env=VAR, or user=NAME,password_env=VAR (the secret from the environment).",
        ),
    ] = None,
    as_mdm: Annotated[
        str | None,
        typer.Option("--as-mdm", envvar="CCBMDM_AGAINST_AS_MDM", help="The same, as MDM."),
    ] = None,
    bridge_to_ccb: Annotated[
        str | None,
        typer.Option(
            "--bridge-to-ccb",
            envvar="CCBMDM_AGAINST_BRIDGE_TO_CCB",
            help="With --against: the credential the bridge presents to CCB, which the kit's "
            "CCB then requires (same forms); unset, it takes deliveries from anyone.",
        ),
    ] = None,
    bridge_to_mdm: Annotated[
        str | None,
        typer.Option(
            "--bridge-to-mdm", envvar="CCBMDM_AGAINST_BRIDGE_TO_MDM", help="The same, to MDM."
        ),
    ] = None,
    mutate: Annotated[
        bool,
        typer.Option(
            "--mutate",
            help="Change the compiled mappings one rule at a time and report every mutant no "
            "case kills (with --flow: those flows' mappings).",
        ),
    ] = False,
    project_dir: ProjectDir = None,
) -> None:
    """Run the project's conformance cases: each input through its mapping, against its golden."""
    import json
    from functools import partial

    from rich.table import Table

    from ccbmdm.conformance import suite
    from ccbmdm.conformance.cases import flow_code
    from ccbmdm.conformance.coverage import as_json, measure, totals
    from ccbmdm.conformance.limit import limit_of, limited
    from ccbmdm.conformance.runner import Kit

    if fail_under is not None and not coverage:
        fail("--fail-under needs --coverage", 2)
    if against is not None and (update or coverage):
        fail("--against checks a deployment; --update and --coverage work in process", 2)
    if mutate and (case or keyword or update or coverage or junit or against):
        fail("--mutate runs every case of the selected flows: use it with --flow only", 2)
    if output == "sarif" and (mutate or coverage):
        fail("--format sarif reports cases; use json with --mutate or --coverage", 2)
    project = requires.project(project_dir)
    selection = suite.Selection(tuple(flow or ()), tuple(case or ()), keyword)
    try:
        cases, findings = suite.load(project, selection)
    except suite.BadSelection as exc:
        fail(str(exc))
    if not cases and not findings:
        fail(f"no conformance case in {project.cases} matches the selection")
    with err.status("loading the compiled mappings…"):
        kit = Kit(project)
    flows = {flow_code(f) for f in flow or ()}
    if mutate:
        _mutate(kit, cases, findings, flows, output)
        return
    outcomes: list[Outcome] = []
    skipped: list[Skipped] = []
    if against is not None:
        credentials = {
            "as": {"ccb": as_ccb, "mdm": as_mdm},
            "bridge-to": {"ccb": bridge_to_ccb, "mdm": bridge_to_mdm},
        }
        outcomes, skipped = _run_against(
            kit, project, against, receive, credentials, cases, time_limit, output
        )
    else:
        step = kit.update if update else kit.run
        for number, selected in enumerate(cases, 1):
            limit = limit_of(selected, time_limit)
            outcome = limited(selected, limit, partial(step, selected, time_limit))
            outcomes.append(outcome)
            if output == "text":
                _print_outcome(outcome, number, len(cases), update)
    if junit is not None:
        try:
            suite.write_junit(junit, outcomes, findings)
        except OSError as exc:
            fail(f"{junit}: cannot write the JUnit report: {exc.strerror}")
    mappings = measure(kit.lineage, outcomes, flows) if coverage else []
    if output == "sarif":
        report([*findings, *suite.failure_findings(outcomes)], output)
    elif output == "json":
        document = suite.as_json(outcomes, findings)
        if against is not None:
            document["skipped"] = [{"case": s.case.id, "reason": s.reason} for s in skipped]
        if coverage:
            document["coverage"] = as_json(mappings)
        out.print_json(json.dumps(document))
    else:
        report(findings)
        table = Table(title="conformance", title_justify="left")
        for column in ("flow", "cases", "passed", "failed", "time"):
            table.add_column(column, justify="left" if column == "flow" else "right")
        for row in suite.summary(outcomes):
            table.add_row(
                row.flow, str(row.cases), str(row.passed), str(row.failed), f"{row.seconds:.2f} s"
            )
        out.print(table)
        if skipped:
            out.print(f"{len(skipped)} case(s) skipped: a deployment cannot run them")
        if coverage:
            _print_coverage(mappings)
    # Under --update a rewritten golden or fault is no failure; a broken case still is.
    failed = [o for o in outcomes if not o.passed and not (update and not o.problems)]
    if findings or failed:
        raise Failed(1)
    if fail_under is not None and totals(mappings).rule_percent < fail_under:
        err.print(
            f"rule coverage {totals(mappings).rule_percent:.1f} % is below "
            f"--fail-under {fail_under:g} %"
        )
        raise Failed(1)


def _mutate(
    kit: Kit, cases: list[Case], findings: list[Finding], flows: set[str], output: str
) -> None:
    """--mutate: the mutation run, its survivors and a summary per operator; exit 1 when a
    mutant survives that the allow-list does not name, or a case or the allow-list is
    malformed."""
    import json

    from rich.table import Table

    from ccbmdm.conformance.cases import MappingCase
    from ccbmdm.conformance.mutation import BaselineFailed, mutate

    mapping_cases = [c for c in cases if isinstance(c, MappingCase)]
    with err.status("mutating…") as spinner:

        def progress(number: int, total: int, mutant: Mutant) -> None:
            spinner.update(f"mutant {number}/{total}: {escape(mutant.id)}")

        try:
            result = mutate(kit, mapping_cases, flows, progress)
        except BaselineFailed as exc:
            fail(str(exc))
    findings = [*findings, *result.findings]
    if output == "json":
        document = {
            "mutants": [
                {
                    "id": v.mutant.id,
                    "mapping": v.mutant.mapping,
                    "flow": v.mutant.flow,
                    "part": v.mutant.part,
                    "target": v.mutant.target,
                    "operator": v.mutant.operator,
                    "change": v.mutant.change,
                    "rule": str(v.mutant.rule),
                    "at": str(v.mutant.at),
                    "status": v.status,
                    "cases": v.cases,
                    "rule_exercised": v.covered,
                    "killed_by": v.killed_by,
                    "reason": v.reason,
                }
                for v in result.verdicts
            ],
            "operators": {operator: counts for operator, counts in result.per_operator()},
            "seconds": round(result.seconds, 2),
            "findings": [str(f) for f in findings],
        }
        out.print_json(json.dumps(document))
    else:
        for verdict in result.verdicts:
            if verdict.status not in ("survived", "allowed"):
                continue
            mutant = verdict.mutant
            why = (
                f"allowed: {verdict.reason}"
                if verdict.status == "allowed"
                else "no mapping case runs this mapping"
                if not verdict.cases
                else "no mapping case exercises this rule"
                if not verdict.covered
                else f"{verdict.cases} case(s) run this rule; none notices the change"
            )
            label = "[red]SURVIVED[/]" if verdict.status == "survived" else "[yellow]allowed[/]"
            out.print(
                f"{label} {escape(str(mutant.rule))} {escape(mutant.target)} "
                f"({escape(mutant.mapping)}) {mutant.operator}: {escape(mutant.change)}"
            )
            out.print(f"    {escape(why)}")
        report(findings)
        table = Table(title="mutation", title_justify="left")
        for column in ("operator", "mutants", "killed", "survived", "allowed", "not compiled"):
            table.add_column(column, justify="left" if column == "operator" else "right")
        rows = result.per_operator()
        for operator, counts in rows:
            table.add_row(operator, *(str(n) for n in counts.values()))
        table.add_row("total", *(str(sum(c[k] for _, c in rows)) for k in rows[0][1]))
        out.print(table)
        out.print(f"{len(result.verdicts)} mutant(s) in {result.seconds:.1f} s")
    if findings or result.survivors:
        raise Failed(1)


def _run_against(
    kit: Kit,
    project: Project,
    url: str,
    receive: str,
    credentials: dict[str, dict[str, str | None]],
    cases: list[Case],
    time_limit: float | None,
    output: str,
) -> tuple[list[Outcome], list[Skipped]]:
    """The cases run against the bridge at ``url``, the kit taking deliveries at ``receive``."""
    from contextlib import ExitStack
    from functools import partial

    from pydantic import ValidationError

    from ccbmdm.codegen.catalogue import load_catalogue
    from ccbmdm.conformance import suite
    from ccbmdm.conformance.against import (
        AGAINST_GRACE_S,
        Against,
        AgainstError,
        Skipped,
        credential,
    )
    from ccbmdm.conformance.cases import MappingCase
    from ccbmdm.conformance.limit import limit_of, limited
    from ccbmdm.conformance.receiving import KitSystems
    from ccbmdm.runtime.config import NodeSetting

    try:
        host, port = NodeSetting(listen=receive).address()
    except ValidationError:
        fail(f"--receive {receive!r}: write host:port (port 0: any free port)", 2)
    outcomes: list[Outcome] = []
    skipped: list[Skipped] = []
    try:
        given = {
            kind: {
                system: credential(spec, f"--{kind}-{system}")
                for system, spec in specs.items()
                if spec is not None
            }
            for kind, specs in credentials.items()
        }
        flows = load_catalogue(project.contracts / "flows.yaml")
        every_case = [
            c for c in suite.load(project, suite.Selection())[0] if isinstance(c, MappingCase)
        ]
        systems = KitSystems(kit.registry, flows, given["bridge-to"])
        with ExitStack() as stack:
            try:
                base = systems.serve(stack, host, port)
            except RuntimeError:  # uvicorn could not bind: it said why just above
                fail(f"--receive {receive}: the kit cannot listen there; is the port in use?")
            err.print(f"the kit takes deliveries as CCB at {base}/ccb and as MDM at {base}/mdm")
            for system, checked in systems.checked.items():
                if not checked:
                    err.print(
                        f"  (as {system.upper()} from any caller: no --bridge-to-{system} given)"
                    )
            runner = Against(kit, flows, url, given["as"], systems, every_case, time_limit)
            stack.callback(runner.close)
            for number, selected in enumerate(cases, 1):
                # The kit stops waiting for the bridge at the case's limit; past it, what still
                # runs is the kit's own work on the case (decoding its input, say): stopped.
                limit = limit_of(selected, time_limit) + AGAINST_GRACE_S
                ran = limited(selected, limit, partial(runner.run, selected))
                if isinstance(ran, Skipped):
                    skipped.append(ran)
                    if output == "text":
                        out.print(
                            f"[{number}/{len(cases)}] {ran.case.id} skipped: {escape(ran.reason)}"
                        )
                    continue
                outcomes.append(ran)
                if output == "text":
                    _print_outcome(ran, number, len(cases), False)
    except AgainstError as exc:
        fail(str(exc))
    return outcomes, skipped


def _print_coverage(mappings: list[MappingCoverage]) -> None:
    """Each mapping's rules and fields no case exercises, then the coverage table."""
    from rich.table import Table

    from ccbmdm.conformance.coverage import totals

    for mapping in mappings:
        if not mapping.uncovered_rules and not mapping.uncovered_fields:
            continue
        cases = "no case" if not mapping.cases else f"{mapping.cases} case(s)"
        out.print(f"{escape(mapping.file)} ({mapping.flow} {mapping.part}, {cases}):")
        for rule in mapping.uncovered_rules:
            written = sorted(t for t, r in mapping.fields.items() if r == rule)
            out.print(f"    rule {escape(rule)} not exercised ({', '.join(written)})")
        listed = {t for t, r in mapping.fields.items() if r in mapping.uncovered_rules}
        for target in mapping.uncovered_fields:
            if target not in listed:  # a field without a rule of its own
                out.print(f"    field {escape(target)} not exercised")
    table = Table(title="coverage", title_justify="left")
    for column in ("mapping", "cases", "rules", "fields", "rules %", "fields %"):
        table.add_column(column, justify="left" if column == "mapping" else "right")
    for mapping in mappings:
        table.add_row(
            f"{mapping.flow} {mapping.part}",
            str(mapping.cases),
            f"{len(mapping.covered_rules)}/{len(mapping.rules)}",
            f"{mapping.exercised_fields}/{len(mapping.fields)}",
            f"{mapping.rule_percent:.1f}",
            f"{mapping.field_percent:.1f}",
        )
    total = totals(mappings)
    table.add_row(
        "total",
        str(sum(m.cases for m in mappings)),
        f"{total.covered_rules}/{total.rules}",
        f"{total.covered_fields}/{total.fields}",
        f"{total.rule_percent:.1f}",
        f"{total.field_percent:.1f}",
    )
    out.print(table)


def _print_outcome(outcome: Outcome, number: int, total: int, update: bool) -> None:
    from ccbmdm.conformance.suite import failure_lines

    progress = f"[{number}/{total}] {outcome.case.id}"
    if update:
        changed = "updated" if outcome.differences or outcome.notes else "unchanged"
        out.print(f"{progress} {'FAILED' if outcome.problems else changed}")
        for difference in outcome.differences:
            out.print(f"    {escape(str(difference))}")
        for line in (*outcome.notes, *outcome.problems):
            out.print(f"    {escape(line)}")
        return
    out.print(f"{progress} " + ("[green]passed[/]" if outcome.passed else "[red]FAILED[/]"))
    for line in failure_lines(outcome):
        out.print(f"    {escape(line)}")
