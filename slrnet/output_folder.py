"""An output folder of ``infer`` / ``export`` belongs to one job: locked while it writes, never mixed with another.

    >>> job = describe_job("infer", "w.pth", cfg, val_set, test.as_dict(), results=INFER_RESULTS)
    >>> folder = OutputFolder("outputs/infer", job).claim(overwrite=False)   # RunFolderInUse if another job's
    >>> ...                                                                  # write the results
    >>> folder.release()

* ``job.json`` records what makes the results: the checkpoint (its SHA-256), the config's model section, the data
  root and list, the test-time settings and the names written. It is written when the folder is claimed, so an
  interrupted job is recognised, and completed by running the same command again.
* A folder holding results (any of the job's ``results``) of another job, or results with no record, is refused
  unless ``overwrite``; then those results are deleted first, so the folder never holds a mix of two models'
  labels and a summary describing only one of them.
* While a job writes, ``.lock`` holds its host and process id, exactly as for training runs
  (:class:`slrnet.run_folder.RunFolder`): a second process is refused, a lock left by a killed one is taken over.
* :func:`check_unique_names`: names that would write the same file twice are refused before any work.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from slrnet.errors import RunFolderInUse
from slrnet.paths import escapes
from slrnet.run_folder import RunFolder

JOB_FILE = "job.json"
INFER_RESULTS = ("raw", "crf", "probs", "summary.json")


def file_sha256(path) -> str | None:
    """SHA-256 of a file's bytes; None when there is no such file (a model handed over in memory)."""
    from slrnet.utils import file_sha256 as sha256

    return sha256(path) if Path(path).is_file() else None


def _plain(obj):
    """JSON-safe, as it reads back from job.json (tuples become lists), so a recorded job compares equal."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def describe_job(command: str, checkpoint, cfg: dict, dataset, settings: dict, results, companions=(),
                 **outputs) -> dict:
    """What makes an output folder's results: the record :class:`OutputFolder` compares and ``job.json`` keeps."""
    root, list_file = getattr(dataset, "root", None), getattr(dataset, "list_file", None)
    return _plain({
        "command": command,
        "checkpoint": {"path": str(Path(checkpoint).expanduser().absolute()), "sha256": file_sha256(checkpoint)},
        "model": cfg.get("model"),
        "data": {"root": None if root is None else str(Path(root).resolve()),
                 "list": None if list_file is None else str(Path(list_file).resolve())},
        "settings": settings, "outputs": outputs,
        "results": list(results), "companions": list(companions),
    })


def _flatten(record, prefix: str = "") -> dict:
    if isinstance(record, dict):
        out = {}
        for key, value in record.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: record}


def job_differences(recorded: dict, job: dict) -> list[str]:
    """The keys where two job records differ, ``'key: <recorded> there, <job> now'`` (the checkpoint's path is
    ignored when both digests are known: the same weights copied elsewhere make the same results)."""
    a, b = _flatten(recorded), _flatten(job)
    if a.get("checkpoint.sha256") and b.get("checkpoint.sha256"):
        a.pop("checkpoint.path", None)
        b.pop("checkpoint.path", None)

    def short(value) -> str:
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."

    return [f"{key}: {short(a.get(key))} there, {short(b.get(key))} now"
            for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def check_unique_names(dataset, max_images: int | None = None) -> None:
    """Refuse a list whose entries share an output name (``/JPEGImages/a.jpg`` and ``/other/a.jpg`` both give
    ``a.png``): one prediction would silently replace the other, and a pairs list would pair an image with the
    other's labels. Protects the outputs of ``infer`` and ``export``; checked before any work."""
    names = getattr(dataset, "names", None)
    if names is None:
        return
    names = list(names)[:max_images or None]
    seen: dict[str, int] = {}
    paths = getattr(dataset, "image_paths", None)
    for i, name in enumerate(names):
        if name in seen:
            j = seen[name]
            where = f" ({paths[j]} and {paths[i]})" if paths is not None else ""
            source = getattr(dataset, "list_file", None) or "the list"
            raise ValueError(f"{source}: entries {j + 1} and {i + 1} share the output name {name!r}{where}; their "
                             f"outputs would overwrite each other; give the images distinct file names")
        seen[name] = i


class OutputFolder(RunFolder):
    """An ``infer`` / ``export`` output folder: one job's results (module docstring)."""

    noun, other_name = "output folder", "another --output folder"

    def __init__(self, path, job: dict):
        super().__init__(path)
        self.job = job

    def recorded_job(self) -> dict | None:
        """The job recorded in ``job.json``, or None (none, or unreadable)."""
        try:
            record = json.loads((self.path / JOB_FILE).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def results_found(self, job: dict | None = None) -> list[str]:
        """Which of ``job``'s (default: this job's) result names exist in the folder."""
        names = (job or self.job).get("results", [])
        return [name for name in names if not escapes(name) and (self.path / name).exists()]

    def claim(self, resume: bool = False, overwrite: bool = False) -> "OutputFolder":
        """Lock the folder; refuse another job's results unless ``overwrite`` (then delete them first); record
        this job. ``resume`` is accepted for the signature's sake: the same job always continues."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            recorded = self.recorded_job()
            found = sorted(set(self.results_found()) | set(self.results_found(recorded) if recorded else ()))
            if found and not overwrite:
                self._refuse(recorded, found)
            if overwrite:
                self._delete_results(recorded)
            from slrnet.utils import write_json

            write_json(self.path / JOB_FILE, self.job)
        except BaseException:
            self.release()
            raise
        return self

    def _refuse(self, recorded: dict | None, found: list[str]) -> None:
        if recorded is None:
            why = f"holds results ({', '.join(found)}) with no record ({JOB_FILE}) of what made them"
        else:
            diff = job_differences(recorded, self.job)
            if not diff:
                return                                                    # the same job: continue it
            why = f"holds the results of another job ({'; '.join(diff[:4])}{'; ...' if len(diff) > 4 else ''})"
        raise RunFolderInUse(f"{self.noun} {self.path} {why}; pass --overwrite to delete them and write this "
                             f"job's, or choose {self.other_name}")

    def _delete_results(self, recorded: dict | None) -> None:
        """Delete the results (and companions: the image link, the copied classes file) of this job and of the
        recorded one; only names inside the folder, a link removed as a link."""
        names = set()
        for job in (self.job, recorded or {}):
            names |= set(job.get("results", [])) | set(job.get("companions", []))
        for name in sorted(names):
            if escapes(name):
                continue
            path = self.path / name
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
        (self.path / JOB_FILE).unlink(missing_ok=True)

