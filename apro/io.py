"""Atomic file output: a file that looks finished is always complete.

Everything the suite writes for later steps (metrics, markers, tables,
annotation files) goes through here: the text is written to a temporary file
in the target's folder and renamed into place, so an interrupted run leaves
either the old file or none, never half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def file_sha256(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file (sha256 unless another ``hashlib`` algorithm is named), read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` via a temporary sibling and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Writes ``data`` as indented JSON with sorted keys (same data, same bytes)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
