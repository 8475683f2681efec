"""The chatie job as a user runs it: bad schemas, data lines and unreachable backends exit 2 naming
the file, line or key before Ray starts; a 3-sentence run per task on the random tiny LM goes
through the Ray actor pool; the openai backend against core.llm's OpenAI-compatible server; a
run killed mid-way resumes from its cached answers without asking again."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = "configs/chatie/tiny.yaml"


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "RAY_ADDRESS")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def run_job(tmp_path, *args, timeout=400, env=None):
    cmd = [sys.executable, "-m", "ray_jobs.chatie", *args]
    if "--resume" not in args:
        cmd += ["--set", f"run.root={tmp_path}/runs"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env or _env())


def _tiny_datasets() -> list[dict]:
    import yaml

    return yaml.safe_load((REPO / TINY).read_text())["datasets"]


def _with_bad_schema(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("task: re\nentity_types:\n  person: a person\nrelations:\n"
                 "  spouse: {description: married to, subject: person, object: country}\n")
    data = _tiny_datasets()
    data[1]["schema"] = str(p)
    return ["--set", "datasets=" + json.dumps(data)]


def _with_bad_data(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "1", "text": "Lee is here", "entities": []}\n{"id": "2", "text": "x", "entities": [{"type": '
                 '"person"}]}\n')
    return ["--set", "datasets=" + json.dumps([{"name": "d", "task": "ner", "schema": "wnut17", "path": str(p)}])]


def _with_spacy_on_re(tmp_path):
    data = _tiny_datasets()
    data[1]["spacy"] = True
    return ["--set", "datasets=" + json.dumps(data)]


@pytest.mark.parametrize("make,message", [
    (_with_bad_schema, "bad.yaml:5"),
    (_with_bad_data, "bad.jsonl:2"),
    (lambda t: ["--set", "llm.backend=openai", "--set", "llm.openai.base_url=http://127.0.0.1:9/v1", "--set",
                "llm.openai.max_retries=0", "--set", "llm.openai.timeout_s=2"], "llm.openai"),
    (lambda t: ["--set", "chat.methods=[chatie, magic]"], "chat.methods[1]"),
    (_with_spacy_on_re, "datasets[1].spacy"),
])
def test_bad_input_exits_2_before_ray(tmp_path, capsys, monkeypatch, make, message):
    """In-process (the checks run before any import of Ray's runtime): exit code 2, the message,
    no run directory and no Ray started."""
    import ray

    from ray_jobs.chatie import main

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    was_up = ray.is_initialized()
    code = main(["--config", TINY, "--set", f"run.root={tmp_path}/runs", *make(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    assert message in err, err[-3000:]
    assert not (tmp_path / "runs").exists()
    assert ray.is_initialized() == was_up


def _read(run: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (run / "predictions" / name).read_text().splitlines()]


@pytest.mark.slow
def test_three_sentences_per_task_through_the_actor_pool(tmp_path):
    proc = run_job(tmp_path, "--config", TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "runs" / "chatie").iterdir()
    summary = (run / "summary.md").read_text()
    for name in ("ner3", "re3", "ee3"):
        assert name in summary
        for method in ("chatie", "chatie_loglik", "single_turn"):
            rows = _read(run, f"{name}.{method}.jsonl")
            assert len(rows) == 3
            for r in rows:
                # the full dialogue: system, then user/assistant turns, each answer recorded
                roles = [m["role"] for m in r["dialogue"]]
                assert roles[0] == "system" and roles[1::2] == ["user"] * len(roles[1::2])
                assert roles[2::2] == ["assistant"] * len(roles[2::2]) and len(roles) % 2 == 1
                assert len(r["turns"]) >= 1
                # grounded (chat.ground, on by default): every kept string is the text's own
                strings = [x for p in r["pred"] for x in p[1:] if x]
                assert all(x in r["text"] for x in strings) and isinstance(r["ungrounded"], list)
    assert "spaCy" in summary and (run / "predictions" / "ner3.spacy.jsonl").is_file()
    assert (run / "f1.png").stat().st_size > 5000
    results = json.loads((run / "results.json").read_text())
    loglik = [r for r in results if r["method"] == "chatie_loglik"]
    assert all(r["stats"]["scored"] == 3 * 2 * n for r, n in zip(loglik, (6, 16, 34)))
    for r in results:
        if r["method"] != "spacy":
            dropped = sum(len(x["ungrounded"]) for x in _read(run, f"{r['dataset']}.{r['method']}.jsonl"))
            assert r["metrics"]["dropped"] == dropped and 0 <= r["metrics"]["ungrounded_f1"] <= 1
    # every answer was asked once, and cached per input in the run directory
    cached = sum(1 for f in (run / "cache").iterdir() for _ in f.read_text().splitlines())
    assert cached == sum(r["stats"]["answers"] + (1 if r["stats"]["scored"] else 0) * r["stats"]["inputs"]
                         for r in results if r["method"] != "spacy")


@pytest.mark.slow
def test_openai_backend_against_the_local_server(tmp_path, capsys):
    """The job (in this process, no pool) with backend openai, served by core.llm.server in front of
    the hf SmolLM2-135M (tiny-llama's 128 positions are too few for a chat); stage I by likelihood
    uses the server's prompt log-probs (echo). Short texts, one entity type, 8 new tokens."""
    from core.llm import HFBackend
    from core.llm.server import OpenAIServer
    from core.models import ModelConfig
    from ray_jobs.chatie import main

    (tmp_path / "s.yaml").write_text("task: ner\ntypes:\n  person: a person\n")
    (tmp_path / "d.jsonl").write_text('{"id": "1", "text": "Lee met Kim.", "entities": [{"type": "person", '
                                      '"text": "Lee", "start": 0, "end": 3}]}\n{"id": "2", "text": ""}\n')
    data = [{"name": "mini", "task": "ner", "path": str(tmp_path / "d.jsonl"), "schema": str(tmp_path / "s.yaml")}]
    hf = HFBackend.from_config(ModelConfig(name="smollm2-135m"), batch_size=4)
    with OpenAIServer(hf, "smollm2") as server:
        code = main(["--config", TINY, "--set", f"run.root={tmp_path}/runs", "--set", "llm.backend=openai",
                     "--set", f"llm.openai.base_url={server.base_url}", "--set", "llm.pool.actors=0",
                     "--set", "chat.tokenizer=smollm2-135m", "--set", "chat.max_new_tokens=8",
                     "--set", "datasets=" + json.dumps(data)])
    assert code == 0, capsys.readouterr().err[-3000:]
    (run,) = (tmp_path / "runs" / "chatie").iterdir()
    results = {r["method"]: r for r in json.loads((run / "results.json").read_text())}
    assert set(results) == {"chatie", "chatie_loglik", "single_turn"}
    assert all(r["stats"]["inputs"] == 1 and r["stats"]["skipped_empty"] == 1 for r in results.values())
    assert results["chatie_loglik"]["stats"]["scored"] == 2  # Yes and No for the one type, by log-prob
    assert results["single_turn"]["stats"]["answers"] == 1
    rows = _read(run, "mini.chatie.jsonl")
    assert rows[1]["skipped"] == "empty text" and rows[0]["dialogue"][0]["role"] == "system"
    summary = (run / "summary.md").read_text()
    assert "openai" in summary and "Empty texts skipped: mini 1" in summary


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_resume_after_kill_reuses_cached_answers(tmp_path):
    """SIGKILL the job once some answers are cached; --resume asks only for the rest."""
    data = [{"name": "wnut", "task": "ner", "source": "wnut17", "path": "shared/data/wnut17/test.jsonl",
             "schema": "wnut17", "limit": 40}]
    from ie.config import find_path

    if not find_path("shared/data/wnut17/test.jsonl").is_file():
        pytest.skip("the shared data folder is not beside this checkout")
    args = ["--config", TINY, "--set", "datasets=" + json.dumps(data), "--set", "chat.methods=[chatie, single_turn]",
            "--set", "chat.batch_inputs=2", "--set", "chat.max_new_tokens=24", "--set", f"run.root={tmp_path}/runs"]
    proc = subprocess.Popen([sys.executable, "-m", "ray_jobs.chatie", *args], cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    cache = None
    try:
        while time.time() < deadline:
            found = list((tmp_path / "runs").rglob("cache/wnut.jsonl"))
            if found and len(found[0].read_text().splitlines()) >= 10:
                cache = found[0]
                break
            assert proc.poll() is None, "the job ended before it cached 10 answers"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
        proc.wait()
    assert cache is not None
    run = cache.parent.parent
    assert not (run / "summary.md").exists()
    before = [json.loads(x) for x in cache.read_text().splitlines() if x.strip().endswith("}")]
    done = subprocess.run([sys.executable, "-m", "ray_jobs.chatie", "--resume", str(run)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    reused = sum(r["stats"]["reused"] for r in results if r["method"] != "spacy")
    assert reused == len(before) > 0
    after = cache.read_text().splitlines()
    # nothing was asked twice: every cache key appears once
    keys = [(r["id"], r["method"], r["key"]) for r in map(json.loads, after)]
    assert len(keys) == len(set(keys))
    assert "answers reused" in (run / "summary.md").read_text()


def test_plans_for_the_shipped_configs():
    """--dry-run's plan: the tiny config on two cores; the cluster config needs its GPUs, and a
    laptop without them is refused naming the field."""
    from core.config import ConfigError, load
    from ie.config import ChatIEJobConfig
    from ray_jobs import plans

    tiny = plans.plan_chatie(load(ChatIEJobConfig, REPO / TINY), {"CPU": 2.0, "GPU": 0.0})
    assert any("LLM actors (hf): 1 x" in line for line in tiny) and any("ee3 (ee" in line for line in tiny)
    cluster = load(ChatIEJobConfig, REPO / "configs/chatie/cluster.yaml")
    lines = plans.plan_chatie(cluster, {"CPU": 96.0, "GPU": 8.0})
    assert any("1 GPU" in line for line in lines)
    with pytest.raises(ConfigError) as err:
        plans.plan_chatie(cluster, {"CPU": 2.0, "GPU": 0.0})
    assert err.value.key == "llm.pool.num_gpus"
    laptop = load(ChatIEJobConfig, REPO / "configs/chatie/laptop.yaml", ["llm.backend=hf"])
    assert [d.name for d in laptop.datasets] == ["wnut17", "fewrel", "wikievents"]
    # stage I by likelihood on events is about 9 hours here: the laptop config leaves it out there
    assert laptop.datasets[2].methods == ["chatie", "single_turn"] and laptop.uses("chatie_loglik")
    assert any("wikievents (ee" in line and "methods chatie, single_turn" in line
               for line in plans.plan_chatie(laptop, {"CPU": 2.0, "GPU": 0.0}))
    wnut = load(ChatIEJobConfig, REPO / "configs/chatie/wnut17.yaml")
    assert (wnut.chat.methods, wnut.chat.stage1_top_k, wnut.datasets[0].limit) == (["single_turn", "chatie_loglik"], 1, 600)


def test_stage1_top_k_needs_likelihood_stage_one_and_names_itself_in_the_tables():
    from core.config import ConfigError, load
    from ie.config import ChatIEJobConfig
    from ie.experiment import Result
    from ie.report import label

    from bench.chatie import section_name

    laptop = REPO / "configs/chatie/laptop.yaml"
    with pytest.raises(ConfigError) as err:
        load(ChatIEJobConfig, laptop, ["chat.stage1_top_k=-1"])
    assert err.value.key == "chat.stage1_top_k"
    with pytest.raises(ConfigError) as err:
        load(ChatIEJobConfig, laptop, ["chat.methods=[chatie, single_turn]", "chat.stage1_top_k=1"])
    assert err.value.key == "chat.stage1_top_k" and "chatie_loglik" in str(err.value)
    top1 = load(ChatIEJobConfig, laptop, ["chat.methods=[chatie_loglik, single_turn]", "chat.stage1_top_k=1"])
    every = load(ChatIEJobConfig, laptop, ["chat.methods=[chatie_loglik, single_turn]"])
    assert section_name(top1, str(laptop)) == "chatie_stage1_top1" and section_name(every, str(laptop)) == "chatie"
    r = Result("wnut17", "ner", "chatie_loglik", {}, {}, {"stage1_top_k": 1})
    assert label(r) == "ChatIE, stage I by likelihood, top 1"
    assert label(Result("wnut17", "ner", "chatie_loglik", {}, {}, {})) == "ChatIE, stage I by likelihood"
