"""Atomic output: a file or folder that looks finished is always complete.

Everything the suite writes for later steps (metrics, markers, tables,
annotation files, datasets, label folders, figures) goes through here: a file
is written to a temporary sibling and renamed into place (:func:`atomic_file`),
a folder is built as a hidden sibling and renamed into place when complete
(:func:`atomic_folder`), so an interrupted run leaves either the old output or
none, never half of it. :func:`write_png` is the one PNG writer (label maps,
dataset images, figures).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Type

#: zlib level of every PNG written by :func:`write_png` (part of the byte-identical output)
PNG_COMPRESS_LEVEL = 6
#: the process's umask: atomically written files get the mode a plain open() would give them
#: (mkstemp's temporary files are 0600, which would hide results from the other users of a cluster)
_UMASK = os.umask(0)
os.umask(_UMASK)


def file_sha256(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file (sha256 unless another ``hashlib`` algorithm is named), read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields an empty temporary sibling of ``path`` (``.<name>.<random><suffix>``) to write.

    When the block ends normally the temporary file replaces ``path``
    (``os.replace``); when it raises, the temporary file is removed. The parent
    folder is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


@contextlib.contextmanager
def atomic_folder(out: str | os.PathLike, overwrite: bool = False,
                  error: Type[Exception] = FileExistsError) -> Iterator[Path]:
    """Yields a fresh hidden sibling folder ``.<name>.<pid>.partial`` of ``out`` to fill.

    When the block ends normally the folder is renamed to ``out``; whatever
    was at ``out`` (a folder, file or link) is removed only once the new
    folder is complete. When it raises, the partial folder is removed. Unless
    ``overwrite``, an ``out`` that exists and is not an empty folder raises
    ``error`` before anything is written. The parent folder is created.
    """
    out = Path(out)
    if not overwrite and (out.is_symlink() or out.exists()) and (not out.is_dir() or any(out.iterdir())):
        raise error(f"{out}: output folder exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.partial"
    _remove(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if out.is_dir() and not out.is_symlink():
            old = out.parent / f".{out.name}.{os.getpid()}.old"
            _remove(old)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            _remove(out)
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` via a temporary sibling and ``os.replace`` (:func:`atomic_file`)."""
    with atomic_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Writes ``data`` as indented JSON with sorted keys (same data, same bytes)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_png(path: str | os.PathLike, image: Any, dpi: int = 100) -> None:
    """Writes ``image`` to ``path`` as a PNG.

    ``image``: a uint8 array, ``(H, W)`` (a label map) or ``(H, W, 3)`` (RGB),
    written by Pillow at :data:`PNG_COMPRESS_LEVEL` without metadata (same
    array, same bytes); or a matplotlib figure, saved at ``dpi`` with a tight
    bounding box. Not atomic by itself: write into an :func:`atomic_folder`,
    or to the temporary path of :func:`atomic_file`.
    """
    if hasattr(image, "savefig"):
        buf = io.BytesIO()
        image.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        Path(path).write_bytes(buf.getvalue())
        return
    import numpy as np
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(
        path, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
