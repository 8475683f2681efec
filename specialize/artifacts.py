"""Typed stage artifacts: keys, a store that writes them atomically, and the completion test.

An artifact is one folder per (stage, key) holding one sub-folder per output (a dataset, a
model folder, an index, a report) and the marker ARTIFACT.json, which lists every file with its
size. The folder is written under a temporary name and renamed into place with the marker
already inside, so a crash leaves either no artifact or a complete one; a folder whose marker
is missing, unreadable, for another key, or whose listed files are missing or of another size
is not complete, and is never taken as done.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.runs import _jsonable, atomic_write

log = logging.getLogger("tailor.specialize")

ARTIFACT_TYPES = ("dataset", "model", "index", "report")
MARKER = "ARTIFACT.json"
# Config keys that say where or with how many local CPUs a job runs, not what it computes:
# left out of the key, so moving a run does not recompute it.
PLACEMENT_KEYS = ("run", "ray_num_cpus")
KEY_VERSION = 1


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items() if k not in PLACEMENT_KEYS}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    return _jsonable(obj)


def artifact_key(kind: str, config: dict[str, Any], input_keys: dict[str, str], context: dict[str, Any] | None = None) -> str:
    """A hash of what the stage computes: its kind, its config (placement keys left out), the keys
    of the artifacts it reads (by input port) and the recipe-level settings it uses (`context`)."""
    payload = json.dumps({"v": KEY_VERSION, "kind": kind, "config": _canonical(config),
                          "inputs": dict(sorted(input_keys.items())), "context": _canonical(context or {})},
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def folder_name(stage: str, key: str) -> str:
    return f"{stage}-{key}"


def list_files(folder: Path) -> dict[str, int]:
    """Every file under `folder` (relative posix path -> size), the marker left out."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MARKER:
            out[p.relative_to(folder).as_posix()] = p.stat().st_size
    return out


def check_complete(folder: str | Path, key: str | None = None) -> tuple[bool, str]:
    """(complete?, why not). Complete: the marker is there and readable, names `key` (when given),
    and every file it lists is there with its recorded size."""
    folder = Path(folder)
    marker = folder / MARKER
    if not folder.is_dir():
        return False, "no artifact folder"
    if not marker.is_file():
        return False, f"no completion marker {MARKER}"
    try:
        meta = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return False, f"unreadable marker: {err}"
    if key is not None and meta.get("key") != key:
        return False, f"marker is for key {meta.get('key')!r}, not {key!r}"
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        return False, "marker lists no files"
    for rel, size in files.items():
        p = folder / rel
        if not p.is_file():
            return False, f"missing file {rel}"
        if p.stat().st_size != size:
            return False, f"file {rel} has {p.stat().st_size} bytes, the marker says {size}"
    return True, ""


@dataclass
class Artifact:
    """A complete artifact: its folder, and what its marker says."""

    stage: str
    key: str
    path: Path
    outputs: dict[str, str]  # output name -> artifact type
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def output(self, name: str) -> Path:
        return self.path / name

    @classmethod
    def read(cls, folder: Path) -> Artifact:
        meta = json.loads((folder / MARKER).read_text())
        return cls(meta["stage"], meta["key"], folder, meta["outputs"], meta.get("metrics", {}),
                   float(meta.get("seconds", 0.0)), meta)


def _copy_tree(src: Path, dst: Path) -> None:
    """Hard links where the filesystem allows (artifacts are never modified in place), else copies."""
    def link_or_copy(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link_or_copy)


class ArtifactStore:
    """Artifacts of one run under `root` (<run>/artifacts). `lookup` lists other artifact folders
    (earlier runs' artifacts, a storage path's) where a complete artifact with the same key counts
    as done: it is linked or copied in, never recomputed. With `storage_path`, every new artifact
    is also copied to <storage_path>/specialize/artifacts."""

    def __init__(self, root: str | Path, lookup: list[str | Path] = (), storage_path: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lookup = [Path(p) for p in lookup]
        self.storage_path = storage_path

    def folder(self, stage: str, key: str) -> Path:
        return self.root / folder_name(stage, key)

    def get(self, stage: str, key: str) -> Artifact | None:
        """The complete artifact of (stage, key) in this run, brought in from `lookup` or the
        storage path if only there; None when no complete one exists anywhere."""
        here = self.folder(stage, key)
        ok, why = check_complete(here, key)
        if ok:
            return Artifact.read(here)
        if here.exists():
            log.warning("artifact %s is incomplete (%s): it will be recomputed", here, why)
        for base in self.lookup:
            there = base / folder_name(stage, key)
            if there.resolve() != here.resolve() and check_complete(there, key)[0]:
                log.info("%s: reusing the complete artifact %s", stage, there)
                self._bring_in(lambda tmp: _copy_tree(there, tmp), here)
                return Artifact.read(here)
        if self.storage_path and self._fetch_from_storage(stage, key, here):
            return Artifact.read(here)
        return None

    def _bring_in(self, fill, here: Path) -> None:
        tmp = here.with_name(f".{here.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            fill(tmp)
            self._swap_in(tmp, here)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def begin(self, stage: str, key: str) -> Path:
        """An empty temporary folder that the stage writes its outputs into."""
        tmp = self.root / f".{folder_name(stage, key)}.tmp-{os.getpid()}-{time.time_ns()}"
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, stage: str, key: str, tmp: Path, outputs: dict[str, str], metrics: dict[str, Any],
               seconds: float, extra: dict[str, Any] | None = None) -> Artifact:
        """Check the outputs are there, write the marker into `tmp`, rename `tmp` into place."""
        for name, typ in outputs.items():
            if typ not in ARTIFACT_TYPES:
                raise ValueError(f"{stage}: output {name!r} has unknown type {typ!r}")
            p = tmp / name
            if not p.is_dir() or not any(p.rglob("*")):
                raise RuntimeError(f"stage {stage!r} wrote nothing for its {typ} output {name!r}")
        files = list_files(tmp)
        _fsync_tree(tmp)
        meta = {"stage": stage, "key": key, "outputs": outputs, "metrics": metrics, "seconds": seconds,
                "files": files, "written": time.strftime("%Y-%m-%dT%H:%M:%S"), **(extra or {})}
        atomic_write(tmp / MARKER, json.dumps(_jsonable(meta), indent=2))
        here = self.folder(stage, key)
        self._swap_in(tmp, here)
        if self.storage_path:
            self._upload(here)
        return Artifact.read(here)

    @staticmethod
    def _swap_in(tmp: Path, here: Path) -> None:
        """Rename `tmp` to `here`; an existing `here` (incomplete, or recomputed with --from) is
        moved aside first and deleted after, so `here` never holds a mix of both."""
        old = None
        if here.exists():
            old = here.with_name(f".{here.name}.old-{os.getpid()}-{time.time_ns()}")
            os.replace(here, old)
        os.replace(tmp, here)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    def clean_temporaries(self) -> int:
        """Remove what a killed driver left half-written (temporary and moved-aside folders)."""
        n = 0
        for p in self.root.glob(".*"):
            if p.is_dir() and (".tmp-" in p.name or ".old-" in p.name):
                shutil.rmtree(p, ignore_errors=True)
                n += 1
        return n

    # --- the storage path (a folder or a pyarrow filesystem URI) -----------------------------------

    def _storage(self):
        import pyarrow.fs as pafs

        if "://" in self.storage_path:
            fs, base = pafs.FileSystem.from_uri(self.storage_path)
        else:
            fs, base = pafs.LocalFileSystem(), str(Path(self.storage_path).resolve())
        return fs, f"{base.rstrip('/')}/specialize/artifacts"

    def _upload(self, here: Path) -> None:
        """Copy the artifact to the storage path, its marker last, so a reader there that finds
        the marker finds every file. A failed copy is logged: the local artifact is intact."""
        import pyarrow.fs as pafs

        try:
            fs, base = self._storage()
            dest = f"{base}/{here.name}"
            fs.create_dir(dest, recursive=True)
            local = pafs.LocalFileSystem()
            for rel in list_files(here):
                fs.create_dir(f"{dest}/{rel}".rsplit("/", 1)[0], recursive=True)
                pafs.copy_files(str((here / rel).resolve()), f"{dest}/{rel}", source_filesystem=local,
                                destination_filesystem=fs)
            pafs.copy_files(str((here / MARKER).resolve()), f"{dest}/{MARKER}", source_filesystem=local,
                            destination_filesystem=fs)
        except Exception as err:  # noqa: BLE001 - the run goes on with its local copy
            log.error("could not copy artifact %s to %s: %s", here, self.storage_path, err)

    def _fetch_from_storage(self, stage: str, key: str, here: Path) -> bool:
        import pyarrow.fs as pafs

        try:
            fs, base = self._storage()
            src = f"{base}/{folder_name(stage, key)}"
            if fs.get_file_info(f"{src}/{MARKER}").type != pafs.FileType.File:
                return False

            def fill(tmp: Path) -> None:
                tmp.mkdir(parents=True)
                pafs.copy_files(src, str(tmp.resolve()), source_filesystem=fs,
                                destination_filesystem=pafs.LocalFileSystem())

            self._bring_in(fill, here)
        except Exception as err:  # noqa: BLE001 - not there, or not readable: compute it
            log.warning("could not read artifact %s/%s from %s: %s", stage, key, self.storage_path, err)
            return False
        ok, why = check_complete(here, key)
        if not ok:
            log.warning("artifact %s from %s is incomplete (%s)", here.name, self.storage_path, why)
        return ok


def _fsync_tree(folder: Path) -> None:
    """Flush every file before the marker is written: after a power cut the marker never
    describes files that did not reach the disk."""
    for p in folder.rglob("*"):
        if p.is_file():
            try:
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError:
                pass


__all__ = ["ARTIFACT_TYPES", "Artifact", "ArtifactStore", "MARKER", "artifact_key", "check_complete", "list_files"]
