"""Run directories: runs/<job>/<timestamp>/ with config.yaml, metrics.jsonl, summary.md, plots.

Writes that a crash could cut short (summary, JSON files, checkpoints) go to a temporary
file first and are renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

from core.config import ConfigError, to_yaml


# Schemes pyarrow.fs.FileSystem.from_uri understands; checked by name at config load, because
# building an s3/gcs filesystem already talks to the network (region lookup, credentials).
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


@dataclass
class RunConfig:
    root: str = "runs"  # runs/<job>/<timestamp>/ is created under it
    # Where a finished (or failed) run is copied, as Ray Train's RunConfig.storage_path: a folder
    # or a pyarrow filesystem URI such as s3://bucket/tailor. The results then outlive the
    # cluster whose local disk `root` is on. null keeps them in `root` only.
    storage_path: str | None = None

    def validate(self) -> None:
        if not self.storage_path or "://" not in self.storage_path:
            return
        scheme = self.storage_path.split("://", 1)[0].lower()
        if scheme not in STORAGE_SCHEMES:
            raise ConfigError("storage_path", f"unsupported URI scheme {scheme!r} in {self.storage_path!r}; "
                                              f"allowed: a folder or {', '.join(s + '://' for s in STORAGE_SCHEMES)}")


def atomic_write(path: str | Path, data: bytes | str | Callable[[BinaryIO], object]) -> Path:
    """Write `data` (or call `data(f)` to stream into the file) to a temporary file beside `path`,
    fsync, and rename it into place: a crash leaves the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if hasattr(v, "item") and callable(v.item):
        return _jsonable(v.item())
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, job: str, root: str | Path = "runs") -> "RunDir":
        base = Path(root) / job
        base.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for i in range(1000):
            path = base / (stamp if i == 0 else f"{stamp}-{i}")
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                continue
        raise RuntimeError(f"could not create a run directory under {base}")

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, cfg: Any) -> None:
        atomic_write(self.file("config.yaml"), to_yaml(cfg))

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write(self.file(name), json.dumps(_jsonable(obj), indent=2))

    def log_metrics(self, record: dict[str, Any]) -> None:
        # One line per record, flushed at once, so a crash loses at most the line being written.
        with open(self.file("metrics.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(_jsonable(record)) + "\n")
            f.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        p = self.file("metrics.jsonl")
        if not p.exists():
            return []
        out = []
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line after a crash
        return out

    def write_summary(self, text: str) -> None:
        atomic_write(self.file("summary.md"), text)


def upload_run(run: RunDir, storage_path: str | None) -> str | None:
    """Copy the run directory to `storage_path`/<job>/<run name> (a folder or pyarrow URI).

    Returns where it went, or None without a storage path. On a local filesystem the copy is
    made under a temporary name and renamed, so a reader never takes a half-copied run for a
    finished one; object stores have no directory rename, so there the files are copied in
    place and summary.md (written last by every job) marks a complete run. A failed upload is
    logged, never raised: the local run is intact.
    """
    if not storage_path or not run.path.is_dir():  # nothing to keep: the job removed its run
        return None
    import shutil

    import pyarrow.fs as pafs

    log = logging.getLogger("tailor.runs")
    job, name = run.path.parent.name, run.path.name
    try:
        if "://" in storage_path:
            fs, base = pafs.FileSystem.from_uri(storage_path)
        else:
            fs, base = pafs.LocalFileSystem(), str(Path(storage_path).resolve())
        dest = f"{base.rstrip('/')}/{job}/{name}"
        local = isinstance(fs, pafs.LocalFileSystem)
        target = f"{base.rstrip('/')}/{job}/.{name}.uploading" if local else dest
        if local:
            shutil.rmtree(target, ignore_errors=True)
        fs.create_dir(target, recursive=True)
        pafs.copy_files(str(run.path.resolve()), target, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=fs)
        if local:
            shutil.rmtree(dest, ignore_errors=True)  # a resumed run replaces its earlier copy
            os.replace(target, dest)
    except Exception as err:  # noqa: BLE001 - the run itself succeeded; say why the copy did not
        log.error("could not copy %s to %s: %s", run.path, storage_path, err)
        return None
    where = dest if "://" not in storage_path else f"{storage_path.split('://', 1)[0]}://{dest}"
    log.info("run copied to %s", where)
    return where


def progress(iterable: Iterable, total: int | None = None, desc: str = "", **kw):
    """A tqdm bar on stderr; silent when stderr is not a terminal (Ray job logs, CI)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, disable=None, **kw)


_NOISY = ("flwr", "ray", "transformers", "peft", "urllib3", "filelock", "matplotlib", "httpx", "datasets", "alembic", "sqlalchemy")


class _QuietLibraries(logging.Filter):
    """Drop library records below WARNING, and Flower's notice that run_simulation is deprecated
    (we support both it and `flwr run`). Flower resets its own logger's level while it runs,
    so the filter sits on our handler rather than on the library loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] not in _NOISY:
            return True
        if record.levelno < logging.WARNING:
            return False
        return "deprecated" not in record.getMessage()


def setup_logging(verbose: bool = False) -> None:
    """Our INFO lines; Flower, Ray and transformers only when they warn (all with --verbose)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    if not verbose:
        import warnings

        # peft calls a transformers API deprecated in v5; nothing for a user to act on.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        for h in logging.getLogger().handlers:
            h.addFilter(_QuietLibraries())
        flwr_logger = logging.getLogger("flwr")
        for h in flwr_logger.handlers:
            h.addFilter(_QuietLibraries())
        try:
            import transformers

            transformers.logging.set_verbosity_error()
            transformers.logging.disable_progress_bar()
        except ImportError:
            pass


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)
