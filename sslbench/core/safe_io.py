"""Reading what a user hands us without trusting it, and writing without losing what was there.

Every reader here turns malformed input into one :class:`InputError` whose message is one line
naming the file and the problem, never a traceback, a hang or an explosion of memory:

* only regular files are read: the path is checked with ``os.stat`` before it is opened and
  the open file with ``fstat`` after (``O_NONBLOCK``, so a FIFO swapped in between cannot block
  the open either); FIFOs, sockets, devices and folders are refused by name;
* at most ``limit`` bytes are read (16 MiB by default; a config or a record is a few KiB);
* the text must be UTF-8;
* TOML, YAML and JSON documents may nest at most :data:`MAX_DEPTH` levels, and the parsers' own
  recursion on deeper input is caught;
* YAML aliases (``*name``) are refused at the first one, so an alias bomb (a few hundred bytes
  that expand to gigabytes) fails in microseconds instead of being expanded;
* JSON must be standard: ``NaN``, ``Infinity`` and numbers that overflow to infinity are refused.

Messages repeat user input only through :func:`truncate`. Writers: :func:`atomic_write_bytes`
(temp file, fsync, rename) and :func:`write_failure`, which says "No space left on device" for a
full disk however it surfaced (an ``OSError``, or PyTorch's ``RuntimeError`` around one).
"""

from __future__ import annotations

import errno
import json
import math
import os
import reprlib
import stat
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError

from sslbench.errors import SSLBenchError, UsageError

MAX_BYTES = 16 * 2**20  # configs, matrix files and records are a few KiB
MAX_DEPTH = 32  # the deepest real document (a record's view specs) nests 6 levels
_NONBLOCK = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)  # POSIX only
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
FORMATS = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML", ".json": "JSON"}


class InputError(UsageError, ValueError):
    """A file we were asked to read is unreadable or malformed (exit 2).

    ``problem`` is the part after the file name, for callers that phrase their own line (the
    table's "skipping unreadable record <file>: <problem>"). A ``ValueError`` too, so callers that
    already treat malformed content as ``ValueError`` keep working.
    """

    def __init__(self, message: str, path: Path | str, problem: str) -> None:
        super().__init__(message)
        self.path, self.problem = Path(path), problem


# --- messages ---------------------------------------------------------------------------------

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 80
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6
_repr.maxlevel = 3


def truncate(value: Any, n: int = 80) -> str:
    """``repr(value)`` in at most about ``n`` characters, saying how long the rest was.

    Bounded in time and memory whatever ``value`` is (a 100 MB string, a deeply nested or
    alias-shared structure): only the part shown is ever built.
    """
    if isinstance(value, str) and len(value) > n:
        return f"{value[:n]!r}… ({len(value)} characters)"
    text = _repr.repr(value)
    return text if len(text) <= n + 20 else f"{text[:n]}…"


def one_line(text: str, n: int = 300) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``n`` characters."""
    line = " ".join(str(text)[:4 * n].split())
    return line if len(line) <= n else f"{line[:n]}… ({len(str(text))} characters)"


# --- reading ----------------------------------------------------------------------------------

def read_bytes(path: Path | str, what: str = "file", limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is one line."""
    path = Path(path)
    try:
        _check_regular(path, os.stat(path), what)
        fd = os.open(path, os.O_RDONLY | _NONBLOCK)
    except OSError as exc:
        raise _cannot_read(path, what, exc.strerror or str(exc)) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        _check_regular(path, info, what)  # the path may have been swapped since the stat
        if info.st_size > limit:
            raise _too_large(path, what, info.st_size, limit)
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise _cannot_read(path, what, exc.strerror or str(exc)) from None
    if len(data) > limit:  # it grew while we read
        raise _too_large(path, what, len(data), limit)
    return data


def read_text(path: Path | str, what: str = "file", limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of a regular file (see :func:`read_bytes`)."""
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _cannot_read(path, what, f"UnicodeDecodeError: byte 0x{data[exc.start]:02x} at "
                                       f"offset {exc.start} (line {line}) is not UTF-8") from None


def load_document(path: Path | str, what: str = "file", fmt: str | None = None,
                  limit: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a TOML, YAML or JSON file (``fmt``, else from the suffix) within the limits."""
    path = Path(path)
    text = read_text(path, what, limit)
    fmt = fmt or FORMATS.get(path.suffix.lower())
    if fmt is None:
        problem = f"unknown format {path.suffix.lower()!r}; use .toml, .yaml or .json"
        raise InputError(f"{what} {path}: {problem}", path, problem)
    try:
        data = parse(text, fmt, max_depth)
    except ValueError as exc:
        problem = f"not valid {fmt}: {exc}"
        raise InputError(f"{what} {path} is {problem}", path, problem) from None
    return data


def parse(text: str, fmt: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text`` as ``fmt`` ("TOML", "YAML" or "JSON"); ``ValueError`` with one line."""
    try:
        if fmt == "TOML":
            data = tomllib.loads(text)
        elif fmt == "YAML":
            data = yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader
        else:
            data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(f"it nests deeper than {max_depth} levels") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValueError(one_line(f"{exc.problem or exc.context}{where}", 200)) from None
    except (tomllib.TOMLDecodeError, yaml.YAMLError, ValueError) as exc:
        raise ValueError(one_line(str(exc), 200)) from None
    if depth_exceeds(data, max_depth):
        raise ValueError(f"it nests deeper than {max_depth} levels")
    return data


def parse_yaml_value(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """One ``--set`` value as YAML; ``yaml.YAMLError`` for aliases, syntax or too deep nesting
    (callers then take the text literally)."""
    try:
        return parse(text, "YAML", max_depth)
    except ValueError as exc:
        raise yaml.YAMLError(str(exc)) from None


class NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases: nothing is ever expanded."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ComposerError(
                None, None, f"aliases are not allowed (*{one_line(event.anchor, 40)}); write "
                "the value out", event.start_mark)
        return super().compose_node(parent, index)


def depth_exceeds(data: Any, max_depth: int) -> bool:
    """Whether lists and dicts in ``data`` nest deeper than ``max_depth`` (no recursion)."""
    stack = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        children = (node.values() if isinstance(node, dict) else
                    node if isinstance(node, list | tuple) else None)
        if children is None:
            continue
        if depth + 1 > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {truncate(text, 40)} is out of range")
    return value


def _check_regular(path: Path, info: os.stat_result, what: str) -> None:
    if stat.S_ISREG(info.st_mode):
        return
    kind = ("a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode)
            else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device"
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a file")
    raise _cannot_read(path, what, f"it is {kind}, not a regular file")


def _cannot_read(path: Path, what: str, problem: str) -> InputError:
    return InputError(f"cannot read {what} {path}: {problem}", path, problem)


def _too_large(path: Path, what: str, size: int, limit: int) -> InputError:
    return _cannot_read(path, what, f"it is {size / 2**20:.1f} MiB, more than the "
                                    f"{limit / 2**20:.0f} MiB a {what} may have")


# --- writing ----------------------------------------------------------------------------------

def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is, or wraps, a full disk or quota (PyTorch's writer wraps the OSError
    in a ``RuntimeError`` about its zip container)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in (_FULL):
            return True
        if "No space left on device" in str(exc)[:2000]:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def write_failure(what: str, path: Path | str, exc: BaseException, kept: str = "") -> str:
    """One line for a failed write: ``cannot write checkpoint X: No space left on device``,
    then ``kept`` (what is intact, e.g. ``"; the previous checkpoint is intact"``). ``what``
    names the kind of file (``""``: the path says enough)."""
    if is_disk_full(exc):
        why = "No space left on device"
    elif isinstance(exc, OSError):
        why = exc.strerror or one_line(str(exc), 200) or type(exc).__name__
    else:
        why = f"{type(exc).__name__}: {one_line(str(exc), 200)}"
    target = f"{what} {path}" if what else str(path)
    return f"cannot write {target}: {why}{kept}"


def atomic_write_bytes(path: Path | str, data: bytes, what: str = "file") -> None:
    """Temp file in the same folder, fsync, rename: ``path`` holds the old bytes or the new.

    A failure (a full disk) is one :class:`SSLBenchError` line; the temp file is removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise SSLBenchError(write_failure(what, path, exc)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            kept = f"; the previous {what} is intact" if path.exists() else ""
            raise SSLBenchError(write_failure(what, path, exc, kept)) from None
        raise
