"""Download and verify: one file from a URL to its place, atomically, checked against its checksum.

Used for everything the workflow downloads (ImageNet weights, the release's checkpoints, dataset
archives, label sources). A file already in place is only checked, so files placed by hand are used;
unless the full checksum is published (torch.hub's file names carry only its first 8 digits), the first
check records it (``<file>.sha256``) and later runs are checked against it. Nothing here imports torch.
"""
from __future__ import annotations

import os
import shutil
import urllib.request
from pathlib import Path
from typing import Optional, Union

from apro.errors import RunFailed
from apro.io import atomic_file, file_sha256


class FetchError(RunFailed):
    """A download that failed or a file that does not match its checksum."""


def _checked(path: Union[str, os.PathLike], digests, algorithm: str) -> str:
    """``path``'s digest (computed once), checked against each of ``digests`` that is not None (a full hex digest
    or a prefix of >= 8 digits)."""
    digests = [d.lower() for d in digests if d is not None]
    for expected in digests:
        if len(expected) < 8 or any(c not in "0123456789abcdef" for c in expected):
            raise FetchError(f"checksum {expected!r} for {path}: expected at least 8 hex digits of the {algorithm}")
    got = file_sha256(path, algorithm)
    for expected in digests:
        if not got.startswith(expected):
            raise FetchError(f"{path}: {algorithm} is {got}, expected {expected}"
                             f"{'...' if len(expected) < len(got) else ''}; the file is corrupt or not the release file")
    return got


def check_digest(path: Union[str, os.PathLike], expected: str, algorithm: str = "sha256") -> str:
    """Checks ``path`` against ``expected`` (full hex digest or a prefix of >= 8 digits); returns the digest."""
    return _checked(path, [expected], algorithm)


def fetch(url: str, out: Union[str, os.PathLike], expected: Optional[str], algorithm: str = "sha256",
          what: str = "file") -> str:
    """Downloads ``url`` to ``out`` (through a temporary file) and checks it; returns its digest.

    A file already at ``out`` is only checked (so files placed by hand are used). ``expected`` is the published
    digest, a prefix of it (torch.hub's file names), or None. Unless the full digest is published, the first
    check records it in ``<out>.<algorithm>`` and every later one enforces it as well.
    """
    out = Path(out)
    record = out.with_name(out.name + f".{algorithm}")
    recorded = record.read_text().split()[0] if record.is_file() else None
    if not out.is_file():
        try:
            with atomic_file(out, suffix=".part") as tmp:
                print(f"fetching {what} {url} -> {out}", flush=True)
                with urllib.request.urlopen(url) as r, open(tmp, "wb") as f:  # noqa: S310 (fixed release URLs)
                    shutil.copyfileobj(r, f, 1 << 20)
                got = _checked(tmp, (expected, recorded), algorithm)  # before it takes its place
        except (OSError, ValueError) as exc:
            raise FetchError(f"could not download {what} from {url} ({exc}); download it by hand and place it at "
                             f"{out} (the workflow then only checks its checksum)") from exc
    else:
        got = _checked(out, (expected, recorded), algorithm)
    if recorded is None and (expected is None or len(expected) < len(got)):
        record.write_text(f"{got}  {out.name}\n")
        published = "no published checksum" if expected is None else f"published prefix {expected} checked"
        print(f"{out}: {published}; recorded {algorithm} {got} in {record}", flush=True)
    return got
