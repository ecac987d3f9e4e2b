"""Download and verify: one file from a URL to its place, atomically, checked against its checksum.

Used for everything the workflow downloads (ImageNet weights, the release's checkpoints, dataset
archives, label sources). A file already in place is only checked, so files placed by hand are used;
without a published checksum the first download records one (``<file>.sha256``) and later runs are
checked against it. Nothing here imports torch.
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


def check_digest(path: Union[str, os.PathLike], expected: str, algorithm: str = "sha256") -> str:
    """Checks ``path`` against ``expected`` (full hex digest or a prefix of >= 8 digits); returns the digest."""
    expected = expected.lower()
    if len(expected) < 8 or any(c not in "0123456789abcdef" for c in expected):
        raise FetchError(f"checksum {expected!r} for {path}: expected at least 8 hex digits of the {algorithm}")
    got = file_sha256(path, algorithm)
    if not got.startswith(expected):
        raise FetchError(f"{path}: {algorithm} is {got}, expected {expected}"
                         f"{'...' if len(expected) < len(got) else ''}; the file is corrupt or not the release file")
    return got


def fetch(url: str, out: Union[str, os.PathLike], expected: Optional[str], algorithm: str = "sha256",
          what: str = "file") -> str:
    """Downloads ``url`` to ``out`` (through a temporary file) and checks it; returns its digest.

    A file already at ``out`` is only checked (so files placed by hand are used).
    With ``expected`` None, the digest is recorded in ``<out>.<algorithm>`` the
    first time and checked against that record afterwards.
    """
    out = Path(out)
    record = out.with_name(out.name + f".{algorithm}")
    if expected is None and record.is_file():
        expected = record.read_text().split()[0]
    if not out.is_file():
        try:
            with atomic_file(out, suffix=".part") as tmp:
                print(f"fetching {what} {url} -> {out}", flush=True)
                with urllib.request.urlopen(url) as r, open(tmp, "wb") as f:  # noqa: S310 (fixed release URLs)
                    shutil.copyfileobj(r, f, 1 << 20)
                if expected is not None:
                    check_digest(tmp, expected, algorithm)
        except (OSError, ValueError) as exc:
            raise FetchError(f"could not download {what} from {url} ({exc}); download it by hand and place it at "
                             f"{out} (the workflow then only checks its checksum)") from exc
    if expected is None:
        got = file_sha256(out, algorithm)
        record.write_text(f"{got}  {out.name}\n")
        print(f"{out}: no published checksum; recorded {algorithm} {got} in {record}", flush=True)
        return got
    return check_digest(out, expected, algorithm)
