"""Recipe checks before anything runs: a missing producer, a type mismatch, a cycle, and the
other wiring mistakes, each naming the stage and the field."""

from __future__ import annotations

import pytest

from core.config import ConfigError, from_dict
from specialize.recipe import SpecializeConfig, build_recipe, concurrent_waves, plan_recipe


def build(d):
    return build_recipe(from_dict(SpecializeConfig, d))


def error(d) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        build(d)
    return info.value


def test_the_mini_recipe_is_ordered_and_wired(mini):
    r = build(mini)
    assert [s.name for s in r.stages] == ["raw", "student", "ppl"]
    assert r.by_name["ppl"].inputs == {"domain": ("raw", "dataset")}
    assert r.descendants("raw") == {"raw", "ppl"}


def test_missing_producer_names_the_stage_and_port(mini):
    mini["stages"][2]["inputs"] = {"domain": "curated"}
    err = error(mini)
    assert err.key == "stages.ppl.inputs.domain"
    assert "no stage named 'curated'" in str(err)


def test_type_mismatch_names_the_stage_and_port(mini):
    # lm_eval's domain takes a dataset; central produces a model
    mini["stages"][2]["inputs"] = {"domain": "student"}
    err = error(mini)
    assert err.key == "stages.ppl.inputs.domain"
    assert "type mismatch" in str(err) and "dataset" in str(err) and "model" in str(err)


def test_type_mismatch_with_a_named_output(mini):
    mini["stages"][2]["inputs"] = {"domain": "raw", "model": "raw.dataset"}
    err = error(mini)
    assert err.key == "stages.ppl.inputs.model"
    assert "takes a model" in str(err)


def test_a_cycle_is_refused_and_spelled_out(mini):
    # student reads ppl's... no: two central stages that start from each other's model
    mini["stages"][1]["inputs"] = {"init": "student2"}
    mini["stages"].append({"name": "student2", "kind": "central", "inputs": {"init": "student"},
                           "config": mini["stages"][1]["config"]})
    err = error(mini)
    assert err.key in ("stages.student.inputs", "stages.student2.inputs")
    assert "cycle" in str(err)
    assert "student -> student2 -> student" in str(err) or "student2 -> student -> student2" in str(err)


def test_a_stage_reading_itself_is_a_cycle(mini):
    mini["stages"][1]["inputs"] = {"init": "student"}
    err = error(mini)
    assert err.key == "stages.student.inputs.init" and "cycle" in str(err)


def test_a_required_input_left_out(mini):
    del mini["stages"][2]["inputs"]
    err = error(mini)
    assert err.key == "stages.ppl.inputs.domain" and "missing" in str(err)


def test_an_unknown_port(mini):
    mini["stages"][2]["inputs"]["corpus"] = "raw"
    err = error(mini)
    assert err.key == "stages.ppl.inputs.corpus" and "domain (dataset)" in str(err)


def test_an_unknown_kind_lists_the_kinds(mini):
    mini["stages"][0]["kind"] = "loader"
    err = error(mini)
    assert err.key == "stages[0].kind" and "curate" in str(err) and "spry" in str(err)


def test_a_bad_field_in_a_stage_config_names_the_stage(mini):
    mini["stages"][1]["config"]["epochs"] = 0
    err = error(mini)
    assert err.key == "stages.student.config.epochs"
    mini["stages"][1]["config"]["epochs"] = 1
    mini["stages"][1]["config"]["student"]["adapter"]["type"] = "prefix"
    assert error(mini).key == "stages.student.config.student.adapter.type"


def test_duplicate_stage_names(mini):
    mini["stages"][1]["name"] = "raw"
    assert error(mini).key == "stages.raw.name"


def test_a_stage_that_needs_the_task_data(mini):
    mini["data"] = None
    err = error(mini)
    assert err.key == "data" and "student" in str(err)


def test_init_from_a_differently_built_classifier_is_refused(mini):
    student = mini["stages"][1]["config"]["student"]
    mini["stages"].append({"name": "more", "kind": "central", "inputs": {"init": "student"},
                           "config": {"student": {**student, "adapter": {"type": "lora", "r": 2}}}})
    err = error(mini)
    assert err.key == "stages.more.inputs.init" and "cannot carry over" in str(err)


def test_plan_names_the_stage_whose_request_does_not_fit():
    from pathlib import Path

    import yaml

    d = yaml.safe_load((Path(__file__).parents[2] / "configs/specialize/tiny.yaml").read_text())
    r = build(d)
    lines, cpus = plan_recipe(r, {"CPU": 2.0, "GPU": 0.0})
    assert any(line.startswith("stage spry (spry") for line in lines)
    assert set(cpus) == {s.name for s in r.stages}
    spry = next(s for s in d["stages"] if s["name"] == "spry")
    spry["config"]["resources"]["num_gpus"] = 1
    with pytest.raises(ConfigError) as info:
        plan_recipe(build(d), {"CPU": 2.0, "GPU": 0.0})
    assert info.value.key == "stages.spry.config.resources.num_gpus"


def test_independent_stages_share_a_wave():
    from pathlib import Path

    import yaml

    d = yaml.safe_load((Path(__file__).parents[2] / "configs/specialize/tiny.yaml").read_text())
    waves = concurrent_waves(build(d))
    assert waves[0] == ["curate"]
    assert {"gold", "refusion", "compress"} <= set(waves[1])
    assert "spry" in waves[2]


@pytest.mark.parametrize("name", ["tiny", "classifier", "llm"])
def test_the_shipped_recipes_parse(name):
    from pathlib import Path

    import yaml

    p = Path(__file__).parents[2] / f"configs/specialize/{name}.yaml"
    r = build(yaml.safe_load(p.read_text()))
    assert len(r.stages) >= 4
    assert r.stages[0].kind.name == "curate"
    kinds = {s.kind.name for s in r.stages}
    assert kinds >= ({"gold", "spry", "central", "refusion"} if name == "classifier" else
                     {"compress", "lm_eval"} if name == "llm" else {"gold", "spry", "compress", "lm_eval"})


def test_the_cluster_recipe_plans_on_gpus_and_is_refused_on_a_laptop():
    from pathlib import Path

    from ray_jobs.plans import plan_specialize
    from tests.conftest import load_shipped

    cfg = load_shipped(SpecializeConfig, Path(__file__).parents[2] / "configs/specialize/cluster.yaml")
    lines = plan_specialize(cfg, {"CPU": 96.0, "GPU": 8.0})
    assert any("GPU" in line and "0 GPU" not in line for line in lines)
    with pytest.raises(ConfigError) as info:
        plan_specialize(cfg, {"CPU": 2.0, "GPU": 0.0})
    assert info.value.key.startswith("stages.curate.config.") and "GPU" in str(info.value)
