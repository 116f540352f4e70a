"""The dictionary message bodies are compressed with (runtime/store/bodies.zdict) is the frozen
file, shipped in the package, and training on the goldens it was made from gives it again."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

from ccbmdm.runtime.store import body_dictionary
from ccbmdm.runtime.store.bodies import DICTIONARY
from support import REPO

# Every stored row under bodies.MARK was compressed with these bytes: they never change.
FROZEN_SHA256 = "391c34c77bcd162675e91a88b1be29209dd408b6f030a2e91a9173cfc80cc96d"


def test_the_dictionary_the_package_ships_is_the_frozen_one() -> None:
    assert hashlib.sha256(DICTIONARY).hexdigest() == FROZEN_SHA256
    assert len(DICTIONARY) == body_dictionary.SIZE


def test_training_on_the_goldens_it_was_made_from_gives_the_same_bytes(tmp_path: Path) -> None:
    """The goldens of the commit the dictionary names, from the repository's history (the
    goldens of today may have changed since), trained on as the maintainer's command does."""
    archive = subprocess.run(
        ["git", "archive", body_dictionary.TRAINED_ON, "conformance/cases"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as goldens:
        for member in goldens.getmembers():
            content = goldens.extractfile(member)
            if content is not None:  # a file, not a folder
                (tmp_path / member.name).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / member.name).write_bytes(content.read())
    out = tmp_path / "bodies.zdict"
    body_dictionary.main([str(tmp_path / "conformance" / "cases"), str(out)])
    assert out.read_bytes() == DICTIONARY
