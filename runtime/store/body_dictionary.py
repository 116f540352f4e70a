"""How ``bodies.zdict``, the dictionary that message bodies are compressed with
(``runtime.store.bodies``), was made, and how to make it again.

Decisions:

* It is zstd's trainer over the golden messages of the reference conformance cases: every
  ``*.xml`` under ``conformance/cases``, the contracts' own traffic in each flow, its faults and
  acknowledgements. Never the demo's messages: they are synthetic, and a dictionary that fits
  them would flatter the demo rather than serve a utility's traffic.
* Training is deterministic: one thread, the messages in the order of their paths. On the
  goldens of ``TRAINED_ON`` it gives the shipped file byte for byte (a test trains it again)::

      git archive TRAINED_ON conformance/cases | tar -x -C /tmp/goldens
      python runtime/store/body_dictionary.py /tmp/goldens/conformance/cases OUT

* The shipped file is frozen: every stored row was compressed with it. The goldens move on, and a
  dictionary trained on later ones is another dictionary: it ships as a file of its own under a
  new mark, and ``bodies.zdict`` stays to read the rows written with it.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path

import zstandard

SIZE = 32768  # bytes: the dictionary's size, the trainer's target
# The commit whose conformance cases bodies.zdict was trained on.
TRAINED_ON = "9c41f1416b7a1bbb585ee0afcb229cda47490007"


def golden_messages(cases: Path) -> list[bytes]:
    """Every golden message under ``cases``, in the order of their paths (the trainer's result
    depends on the order)."""
    paths = sorted(cases.rglob("*.xml"), key=lambda path: path.relative_to(cases).as_posix())
    return [path.read_bytes() for path in paths]


def trained(messages: Sequence[bytes]) -> bytes:
    """The dictionary zstd's trainer makes of ``messages``, the same bytes on every run: one
    thread, and its own search for the segment sizes (``k=0, d=0``)."""
    return zstandard.train_dictionary(SIZE, list(messages), threads=1, k=0, d=0).as_bytes()


def main(argv: Sequence[str] | None = None) -> None:
    """Train a dictionary on the goldens and write it to a file, with its sha256."""
    parser = argparse.ArgumentParser(
        prog="python runtime/store/body_dictionary.py", description=main.__doc__
    )
    parser.add_argument("cases", type=Path, help="the conformance cases' folder")
    parser.add_argument("out", type=Path, help="the dictionary file to write")
    args = parser.parse_args(argv)
    dictionary = trained(golden_messages(args.cases))
    args.out.write_bytes(dictionary)
    print(f"{args.out}: {len(dictionary)} bytes, sha256 {hashlib.sha256(dictionary).hexdigest()}")


if __name__ == "__main__":
    main()
