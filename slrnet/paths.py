"""Paths that stay inside their folder: names a user or a data file gives, and outputs kept apart from inputs.

Protects against writing over what a command reads and against writing outside the folder it was given:

* :func:`relative_name`: a name meant to lie *under* a folder (``--mask_dir``, ``--list_name``, ``--run``) is
  relative and has no ``..``: ``/abs/path`` or ``../../x`` are refused, one line naming the flag.
* :func:`entry_name`: the same rule for names read from the downloads' own files (SBD lists, COCO
  ``file_name``, L2ID ``val.txt``), one line naming the file and the entry.
* :func:`check_output_apart`: an output folder may not be, contain, or lie inside the data root it reads
  (symbolic links resolved), so pseudo labels never replace ground-truth masks and lists.

    >>> relative_name("SegmentationClassAug", "--mask_dir")
    'SegmentationClassAug'
    >>> relative_name("../x", "--mask_dir")
    Traceback (most recent call last):
    ValueError: --mask_dir '../x': expected a name relative to its folder (no '..', not an absolute path)
"""
from __future__ import annotations

import os
import re
from pathlib import Path


def escapes(name: str) -> bool:
    """True when ``name``, joined to a folder, could end up outside it: empty, absolute (POSIX or Windows, a
    drive letter too), or holding a ``..`` component (with either separator)."""
    text = str(name)
    if not text.strip() or "\x00" in text:
        return True
    if text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text):
        return True
    return any(part == ".." for part in re.split(r"[\\/]", text))


def relative_name(value, what: str) -> str:
    """``value`` itself when it is a relative name without ``..``; otherwise a ``ValueError`` naming ``what``
    (the flag or key). Protects the folder the name is joined to: nothing is written outside it."""
    if escapes(value):
        raise ValueError(f"{what} {str(value)!r}: expected a name relative to its folder (no '..', not an "
                         f"absolute path)")
    return str(value)


def entry_name(value, source, what: str = "entry") -> str:
    """A name read from a data file (``source``) that a converter joins to its output folder: refused, naming the
    file and the entry, when it is absolute or climbs out with ``..``. Protects ``--out`` from the downloads."""
    if escapes(value):
        raise ValueError(f"{source}: {what} {str(value)!r} would leave the output folder (an absolute path or "
                         f"'..'); expected a plain relative name")
    return str(value)


def _resolved(path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def check_output_apart(output, data_root, what: str = "--output") -> None:
    """Refuse an output folder that is the data root it reads, contains it, or lies inside it (links resolved).
    Protects the dataset: an export there would replace its masks or lists, an inference would mix into it."""
    if data_root is None:
        return
    out, root = _resolved(output), _resolved(data_root)
    if out == root:
        relation = "is"
    elif root in out.parents:
        relation = "lies inside"
    elif out in root.parents:
        relation = "contains"
    else:
        return
    raise ValueError(f"{what} {output} {relation} the data root {data_root} it reads (resolved: {out} vs {root}); "
                     f"writing there could overwrite or mix with the dataset's files; choose a folder outside it")


def read_utf8(path, error: type[Exception], what: str) -> str:
    """The text of ``path`` as UTF-8 (a byte-order mark allowed); another encoding raises ``error`` naming ``what``,
    the file and the first bad byte, not a bare codec message."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{what} {path} is not UTF-8 text (byte {e.start} is 0x{data[e.start]:02x}); save it as "
                    f"UTF-8") from None
