"""Codec speed: the generated codec against the generic route (target: at least 12x).

The generic route is what a project would write without code generation: lxml parses, lxml's
XMLSchema validates (so both sides check the same facets), xsdata's XmlParser binds the parsed
tree to xsdata dataclasses of the same contract, and xsdata's XmlSerializer writes it back.
Both routes start from the message bytes and end with bytes.

Run: python benchmarks/bench_codec.py [--contract ccb/ServiceAgreementSyncRequest] [--seconds 2]
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

from lxml import etree
from timing import BenchmarkFailed, Comparison, compare, machine, settle
from xsdata.formats.dataclass.parsers import XmlParser
from xsdata.formats.dataclass.parsers.config import ParserConfig
from xsdata.formats.dataclass.parsers.handlers import LxmlEventHandler
from xsdata.formats.dataclass.serializers import XmlSerializer

from ccbmdm.codegen.loader import load_contracts
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.messages.xmlsafe import parse_partner_xml

ROOT = Path(__file__).resolve().parents[1]
# The speed-up the generated codec must reach over the generic route.
TARGET = 12.0


def xsdata_baseline(
    contract_xsd: Path, root: str, workdir: Path
) -> tuple[type, XmlParser, XmlSerializer]:
    """Generate xsdata dataclasses for one contract and return its class, parser and serializer."""
    # a package per contract, so that one process can measure several
    package = f"xsdata_baseline_{contract_xsd.parent.name}_{root}".lower()
    subprocess.run(
        [sys.executable, "-m", "xsdata", "generate", str(contract_xsd), "--package", package],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(workdir))
    try:
        module = importlib.import_module(f"{package}.{contract_xsd.parent.name}")
    finally:
        sys.path.remove(str(workdir))
    config = ParserConfig(
        fail_on_unknown_properties=True,
        fail_on_unknown_attributes=True,
        fail_on_converter_warnings=True,
    )
    return (
        getattr(module, root),
        XmlParser(config=config, handler=LxmlEventHandler),
        XmlSerializer(),
    )


def measure(contract: str, seconds: float) -> tuple[int, Comparison]:
    """The sample message's size in bytes, and the two routes timed on it in paired batches."""
    system, root = contract.split("/")
    data = (ROOT / "contracts" / "samples" / system / f"{root}.xml").read_bytes()
    xsd_path = ROOT / "contracts" / system / f"{root}.xsd"

    registry = load_contracts(Project.load(ROOT))
    codec = registry[contract]

    def generated() -> bytes:
        return codec.encode(codec.decode(parse_partner_xml(data)))

    schema = etree.XMLSchema(etree.parse(str(xsd_path)))
    lxml_parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    with tempfile.TemporaryDirectory() as folder:
        clazz, xml_parser, serializer = xsdata_baseline(xsd_path, root, Path(folder))

        def generic() -> bytes:
            tree = etree.fromstring(data, lxml_parser)
            schema.assertValid(tree)
            obj: object = xml_parser.parse(tree, clazz)
            return serializer.render(obj).encode()

        # Both routes must agree on the message before their speeds are compared.
        if registry.decode(generated())[1] != registry.decode(generic())[1]:
            raise BenchmarkFailed(f"the two routes read {contract} differently")
        settle()
        return len(data), compare(generated, generic, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contract", default="ccb/ServiceAgreementSyncRequest")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    try:
        size, (ours, theirs, ratio) = measure(args.contract, args.seconds)
    except BenchmarkFailed as exc:
        sys.exit(str(exc))
    print(machine())
    print(f"message: {args.contract} ({size} bytes)")
    print(f"generated codec (parse + decode + encode): {ours * 1e6:9.1f} us")
    print(f"generic route (parse + XMLSchema + xsdata parse + serialize): {theirs * 1e6:9.1f} us")
    print(f"speed-up: {ratio:.1f}x, median of paired batches (target: at least {TARGET:g}x)")


if __name__ == "__main__":
    main()
