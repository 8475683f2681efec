"""The offline model registry: assembling split-part packages (from fake parts installed into a
temporary site folder), the errors a missing or corrupt part gives, and the listing."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core import registry
from core.config import ConfigError
from core.registry import AssemblyError, ModelNotInstalledError, ModelSpec, Part


def _install_fake_part(site: Path, package: str, version: str, relpath: str, data: bytes) -> None:
    """A minimal installed distribution: METADATA importlib.metadata finds, and the part's file."""
    info = site / f"{package.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    f = site / relpath
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(data)


CHUNKS = [b"alpha-" * 1000, b"bravo-" * 777, b"charlie" * 5]


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A 3-part model 'fake-llm' whose parts are installed as packages fakepart-1..3==0.1.0."""
    site = tmp_path / "site"
    for i, data in enumerate(CHUNKS, 1):
        _install_fake_part(site, f"fakepart-{i}", "0.1.0", f"fakepart_{i}/data/part{i}.bin", data)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("TAILOR_CACHE", str(tmp_path / "cache"))
    whole = b"".join(CHUNKS)
    spec = ModelSpec("fake-llm", "a test model", "gguf", "concat",
                     tuple(Part(f"fakepart-{i}", "0.1.0", f"fakepart_{i}/data/part{i}.bin") for i in (1, 2, 3)),
                     hashlib.sha256(whole).hexdigest(), len(whole), "MIT", "none", "models", "fake.gguf")
    monkeypatch.setitem(registry.REGISTRY, "fake-llm", spec)
    return spec, site, whole


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def test_parts_assemble_in_order_once_into_the_cache(fake_model):
    spec, _, whole = fake_model
    assert registry.installed("fake-llm")
    out = registry.path("fake-llm")
    assert out.read_bytes() == whole and out.name == "fake.gguf"
    assert out.parent == registry.entry_dir(spec) and _leftovers(out.parent) == ["fake.gguf"]
    mtime = out.stat().st_mtime_ns
    assert registry.path("fake-llm") == out and out.stat().st_mtime_ns == mtime  # not assembled twice


def test_parts_out_of_order_fail_the_checksum_and_leave_nothing(fake_model, tmp_path):
    spec, site, whole = fake_model
    parts = [site / p.path for p in spec.parts]
    dest = tmp_path / "out" / "x.gguf"
    with pytest.raises(AssemblyError, match="sha256") as e:
        # same bytes, same size, wrong order: only the checksum can tell
        registry.assemble([parts[1], parts[0], parts[2]], dest, spec.sha256, spec.size, ["p2", "p1", "p3"])
    assert "reinstall p2, p1, p3" in str(e.value)
    assert _leftovers(dest.parent) == []
    assert registry.assemble(parts, dest, spec.sha256, spec.size).read_bytes() == whole


def test_a_corrupt_part_names_the_packages_to_reinstall(fake_model):
    spec, site, _ = fake_model
    p2 = site / spec.parts[1].path
    data = bytearray(p2.read_bytes())
    data[10] ^= 1  # one flipped bit, same size
    p2.write_bytes(bytes(data))
    with pytest.raises(AssemblyError, match="fakepart-2==0.1.0"):
        registry.path("fake-llm")
    assert _leftovers(registry.entry_dir(spec)) == []
    p2.write_bytes(p2.read_bytes()[:-3])  # truncated: the size check says so
    with pytest.raises(AssemblyError, match="bytes, expected"):
        registry.path("fake-llm")


def test_a_missing_part_package_names_it_and_the_make_target(fake_model):
    spec, site, _ = fake_model
    import shutil

    shutil.rmtree(site / "fakepart_2-0.1.0.dist-info")
    assert not registry.installed("fake-llm")
    with pytest.raises(ModelNotInstalledError) as e:
        registry.path("fake-llm", key="teacher.llamacpp.model")
    msg = str(e.value)
    assert e.value.key == "teacher.llamacpp.model"
    assert "fakepart-2==0.1.0" in msg and "make models" in msg and "fakepart-1" not in msg.split("(or")[0]
    assert not registry.entry_dir(spec).exists() or _leftovers(registry.entry_dir(spec)) == []


def test_an_installed_package_with_its_file_gone_or_another_version(fake_model):
    spec, site, _ = fake_model
    (site / spec.parts[2].path).unlink()
    with pytest.raises(ModelNotInstalledError, match=r"fakepart-3==0.1.0 \(installed, but .* missing: reinstall"):
        registry.path("fake-llm")
    meta = site / "fakepart_1-0.1.0.dist-info" / "METADATA"
    meta.write_text(meta.read_text().replace("0.1.0", "0.2.0"))
    with pytest.raises(ModelNotInstalledError, match=r"fakepart-1 0.2.0 \(want 0.1.0\)"):
        registry.path("fake-llm")


def test_a_crash_mid_write_leaves_no_cache_entry(fake_model, tmp_path):
    """A process killed (SIGKILL) between two parts: the cache entry does not exist, so the next
    call assembles it again from scratch and gets the right file."""
    spec, site, whole = fake_model
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(site)!r})
        from core import registry
        from core.registry import ModelSpec, Part
        registry.REGISTRY["fake-llm"] = {spec!r}
        real_open = open
        def crashing_open(path, *a, **k):
            if str(path).endswith("part2.bin"):  # the first part is already written out
                os.kill(os.getpid(), signal.SIGKILL)
            return real_open(path, *a, **k)
        registry.open = crashing_open
        registry.path("fake-llm")
    """)
    import os

    env = {**os.environ, "TAILOR_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    entry = registry.entry_dir(spec)
    assert not (entry / spec.filename).exists()
    partial = [n for n in _leftovers(entry) if n.endswith(".part")]
    assert partial and (entry / partial[0]).stat().st_size == len(CHUNKS[0])  # killed after part 1
    assert registry.path("fake-llm").read_bytes() == whole


def test_an_interrupted_assembly_removes_its_temporary_file(fake_model, tmp_path, monkeypatch):
    spec, site, _ = fake_model
    monkeypatch.setattr(registry.os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt()))
    dest = tmp_path / "out" / "x.gguf"
    with pytest.raises(KeyboardInterrupt):
        registry.assemble([site / p.path for p in spec.parts], dest, spec.sha256, spec.size)
    assert _leftovers(dest.parent) == []


def test_a_split_zip_unpacks_atomically(tmp_path, monkeypatch):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("enc/config.json", '{"model_type": "bert"}')
        z.writestr("enc/vocab.txt", "a\nb\n")
    blob = buf.getvalue()
    site = tmp_path / "site"
    cut = len(blob) // 2
    for i, data in enumerate([blob[:cut], blob[cut:]], 1):
        _install_fake_part(site, f"fakezip-{i}", "1.0", f"fakezip_{i}/input/enc.zip.00{i}", data)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("TAILOR_CACHE", str(tmp_path / "cache"))
    spec = ModelSpec("fake-enc", "an encoder", "encoder", "zip",
                     tuple(Part(f"fakezip-{i}", "1.0", f"fakezip_{i}/input/enc.zip.00{i}") for i in (1, 2)),
                     hashlib.sha256(blob).hexdigest(), len(blob), "MIT", "none", "models", "enc")
    monkeypatch.setitem(registry.REGISTRY, "fake-enc", spec)
    out = registry.path("fake-enc")
    assert out.is_dir() and (out / "vocab.txt").read_text() == "a\nb\n"
    assert _leftovers(out.parent) == ["enc"]  # the archive is not kept, nor any temporary folder


def test_every_registry_entry_is_complete():
    for name, s in registry.REGISTRY.items():
        assert s.name == name and s.parts and s.licence and s.chat_template and s.size > 0
        assert s.make_target in ("install", "models", "models-extra")
        assert s.layout in ("file", "folder") or (s.sha256 and len(s.sha256) == 64 and s.filename)
        assert len({p.package for p in s.parts}) == len(s.parts)  # no part listed twice


def test_the_listing_shows_every_name_with_size_install_state_and_licence():
    out = subprocess.run([sys.executable, "-m", "core.models"], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    for name in [*registry.REGISTRY, *registry.BUILTIN]:
        assert f"| {name} |" in out
    assert "| smollm2-135m | gguf | 98 MB | yes | Apache-2.0 |" in out
    assert "Gemma Terms of Use" in out


def test_an_uninstalled_registry_name_fails_validation_with_the_make_target(monkeypatch):
    from core.models import ModelConfig

    spec = ModelSpec("ghost", "not installed", "encoder", "zip", (Part("no-such-pkg-xyz", "1.0", "x/y.zip"),),
                     "0" * 64, 1, "MIT", "none", "models", "ghost")
    monkeypatch.setitem(registry.REGISTRY, "ghost", spec)
    monkeypatch.setattr("core.models.SHORT_NAMES", (*registry.names(),))
    with pytest.raises(ConfigError) as e:
        ModelConfig(name="ghost").validate()
    assert e.value.key == "name" and "make models" in str(e.value) and "no-such-pkg-xyz==1.0" in str(e.value)


def test_the_make_targets_install_exactly_the_registry_parts():
    root = Path(__file__).resolve().parents[2]
    for target in ("models", "models-extra"):
        lines = (root / f"requirements-{target}.txt").read_text().splitlines()
        pins = {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}
        want = {f"{p.package}=={p.version}" for s in registry.REGISTRY.values() if s.make_target == target
                for p in s.parts}
        assert want <= pins and all(p.endswith("==1.0.0") or p in want for p in pins), target
    makefile = (root / "Makefile").read_text()
    assert "core.models assemble qwen2.5-coder-1.5b mpnet" in makefile
    assert "core.llm.llama_server build" in makefile.split("$(STAMP):", 1)[1].split("touch $(STAMP)")[0]
