"""Files written so that a reader, a crash or a SIGKILL sees the old file or the whole new one.

Used for checkpoints, run files (config.json, metrics.jsonl, metrics.png), ONNX exports and gate
reports. No torch here: a deploy-only install writes reports too.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable


def write_atomic(path: str | os.PathLike, data: bytes | Callable[[BinaryIO], object]) -> Path:
    """Replace ``path`` with ``data`` (bytes, or a function that writes to a binary file) so that a
    reader, a crash or a SIGKILL sees the old file or the whole new one, never a part of it.

    The temp file lies in the same folder because a rename is atomic only within one file system; the
    fsyncs before and after the rename keep a power loss from leaving the new name pointing at
    unwritten blocks or the rename itself forgotten. A kill leaves at most a ``NAME.*.tmp`` behind,
    which no reader opens.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "w+b") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return path


def _create_temp(path: Path) -> tuple[int, Path]:
    # like tempfile.mkstemp, but with mode 0o666 so the umask, not 0o600, decides who may read the result
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make renames in ``folder`` durable where the OS allows (POSIX; Windows opens no folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (and platforms) refuse fsync on a folder; the file itself is synced
        pass
    finally:
        os.close(fd)
