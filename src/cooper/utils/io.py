"""Small file helpers shared by the pipelines: atomic writes and append-only, resumable jsonl."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def check_output_dir(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """``path`` as an output directory to write into: it may exist (as a directory) or not yet; a file at
    ``path`` or at any folder above it is a ValueError naming ``flag``. Call it before loading any model, so
    the mistake is reported at once, not after minutes of work. Creates nothing."""
    p = Path(path).expanduser()
    for node in (p, *p.parents):
        if node.exists():
            if not node.is_dir():
                where = "" if node == p else f" (its parent {str(node)!r} is a file)"
                raise ValueError(f"{flag} {str(p)!r} cannot be an output directory: it is a file{where}")
            if not os.access(node, os.W_OK):
                raise ValueError(f"{flag} {str(p)!r}: {str(node)!r} is not writable")
            break
    return p


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block succeeds and
    removed when it fails, so that ``path`` is never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    # mkstemp makes the file 0600; keep the replaced file's mode, or give a new one the usual 0644
    os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename (never half-written)."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


class JsonlAppender:
    """Append-only jsonl keyed by a field, for runs that resume without redoing finished rows.

    Opening reads the ids already written; a torn last line (a crash mid-write) is dropped and the file
    truncated to its last complete line. Each :meth:`write` is flushed, so a kill loses at most the row
    being written.
    """

    def __init__(self, path: str | os.PathLike[str], *, key: str = "id", resume: bool = True) -> None:
        self.path = Path(path)
        self.key = key
        self.done: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.path.exists():
            self._recover()
        elif not resume:
            self.path.write_text("", encoding="utf-8")
        self._f = self.path.open("a", encoding="utf-8")

    def _recover(self) -> None:
        data = self.path.read_bytes()
        good = data[: data.rfind(b"\n") + 1]  # drop a torn last line
        if len(good) != len(data):
            with self.path.open("r+b") as f:
                f.truncate(len(good))
        for line in good.decode("utf-8").splitlines():
            if line.strip():
                self.done.add(str(json.loads(line)[self.key]))

    def write(self, row: dict[str, Any]) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()
        self.done.add(str(row[self.key]))

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
