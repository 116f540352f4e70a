"""Mapping speed (target: the compiled transformer at most the time of a hand-written function,
and the whole typed path at most the time of XSLT), on the SA_SYNC request with three service
points.

- transformer: the compiled mapping against `baselines/sa_sync_request.py`, model to model;
- whole path: parse the CCB XML, validate it (the codec), transform, write the MDM XML, against
  `baselines/sa_sync_request.xsl` run by lxml (libxslt: parse, transform, serialize; no
  validation). Both use the same code tables and time-zone functions.

Run: python benchmarks/bench_mapping.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from lxml import etree

from ccbmdm.codegen.loader import load_contracts, load_package
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.messages import functions, lexical
from ccbmdm.runtime.messages.mapping import CodeTables, Context

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from baselines import sa_sync_request  # noqa: E402
from timing import BenchmarkFailed, Comparison, compare, machine, settle  # noqa: E402

ROOT = HERE.parent
SOURCE, TARGET = "ccb/ServiceAgreementSyncRequest", "mdm/UsageSubscriptionSyncRequest"
# Our time over the anchor's, at most: the transformer against hand-written Python, the typed
# path against libxslt.
TARGET_RATIO = 1.0


def xslt_with_library(tables: CodeTables) -> etree.XSLT:
    """The baseline stylesheet, with the code tables and zone functions as extension functions."""
    library = etree.FunctionNamespace("urn:ccbmdm:benchmark:functions")
    library["lookup"] = lambda _, table, first, second, column: tables.lookup(
        0, table, (first, second) if second else (first,), column
    )
    library["start-of-day"] = lambda _, day, zone: lexical.format_datetime(
        functions.start_of_day(date.fromisoformat(day), zone)
    )
    library["in-zone"] = lambda _, instant, zone: lexical.format_datetime(
        functions.in_zone(lexical.parse_datetime(instant), zone)
    )
    return etree.XSLT(etree.parse(str(HERE / "baselines" / "sa_sync_request.xsl")))


def measure(seconds: float) -> tuple[Comparison, Comparison]:
    """The compiled transformer against the hand-written one, and the typed path against XSLT,
    each timed in paired batches once the four routes agree on the message."""
    project = Project.load(ROOT)
    package = load_package(project)
    registry = load_contracts(project)
    transformer = package.TRANSFORMERS[("SA_SYNC", "request")]
    ctx = Context(CodeTables.load(project.mappings / "tables"))
    data = (ROOT / "contracts" / "samples" / "ccb" / "ServiceAgreementSyncRequest.xml").read_bytes()
    _, source = registry.decode(data, SOURCE)
    encode = registry[TARGET].encode
    source_codec = registry[SOURCE]

    def compiled() -> object:
        return transformer.function(source, ctx)

    def by_hand() -> object:
        return sa_sync_request.transform(source, ctx, package)

    def typed_path() -> bytes:
        # the codec itself: the registry would hand back the message it decoded last time
        return encode(transformer.function(source_codec.decode(registry.parse(data)), ctx))

    stylesheet = xslt_with_library(ctx.tables)
    xml_parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

    def xslt_path() -> bytes:
        return etree.tostring(stylesheet(etree.fromstring(data, xml_parser)))

    # The four routes must agree on the message before their speeds are compared.
    expected = compiled()
    for route, agrees in (
        ("the hand-written transformer", by_hand() == expected),
        ("the typed path", registry.decode(typed_path(), TARGET)[1] == expected),
        ("the XSLT", registry.decode(xslt_path(), TARGET)[1] == expected),
    ):
        if not agrees:
            raise BenchmarkFailed(f"{route} writes another message than the compiled mapping")
    settle()
    return compare(compiled, by_hand, seconds), compare(typed_path, xslt_path, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    try:
        transformer, whole = measure(args.seconds)
    except BenchmarkFailed as exc:
        sys.exit(str(exc))
    print(machine())
    print(
        f"compiled transformer {transformer.ours * 1e6:8.1f} us   "
        f"hand-written {transformer.theirs * 1e6:8.1f} us"
    )
    print(
        f"  transformer / hand-written: {1 / transformer.ratio:.2f}x "
        f"(target: at most {TARGET_RATIO:g}x)"
    )
    print(
        f"typed path           {whole.ours * 1e6:8.1f} us   "
        f"XSLT (libxslt) {whole.theirs * 1e6:8.1f} us"
    )
    print(f"  typed path / XSLT: {1 / whole.ratio:.2f}x (target: at most {TARGET_RATIO:g}x)")


if __name__ == "__main__":
    main()
