"""bench.report: a section is replaced by name and stamped with date, commit, machine and command."""

import re

from bench.report import linear_fit, load_range_sentence, record_load, run_load_sentence, write_section


def test_a_rerun_replaces_its_section_and_stamps_it(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    write_section("a", "## job, `configs/x/laptop.yaml`: first\n\n| x |\n", path, command="python -m bench.a")
    write_section("b", "## other\n\nbody b\n", path, command="python -m bench.b")
    write_section("a", "## job, `configs/x/laptop.yaml`: second\n\n| y |\n", path, command="python -m bench.a --x 1")
    text = path.read_text()
    assert "first" not in text and "second" in text and "body b" in text
    assert text.index("second") < text.index("body b")  # replaced in place, not appended
    stamp = re.search(r"second\n\n_Measured (\S+ \S+), commit `([0-9a-f]+(\+dirty)?|unknown)`, (\d+) cores \((.+?)\); "
                      r"command: `python -m bench.a --x 1`\._", text)
    assert stamp, text


def test_linear_fit_recovers_a_fixed_part_and_a_slope():
    a, b, worst = linear_fit([1e6, 3e6, 1e7], [16.0 + 14e-6 * n for n in (1e6, 3e6, 1e7)])
    assert abs(a - 16.0) < 1e-6 and abs(b - 14e-6) < 1e-12 and worst < 1e-9
    assert all(x != x for x in linear_fit([1.0], [2.0]))  # one point fits no line: NaNs


def test_load_range_sentence_reports_what_was_recorded_and_what_was_not():
    s = load_range_sentence([[1.5, 2.0], None, [0.7, 3.25]], "sizes")
    assert "from 0.7 to 3.2" in s and "not recorded for 1 of them" in s
    assert load_range_sentence([None, None]) == "The machine's load was not recorded for these points."


def test_a_runs_load_is_recorded_per_pass_and_read_back(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    assert "not recorded" in run_load_sentence([run])
    monkeypatch.setattr("os.getloadavg", lambda: (2.5, 0.0, 0.0))
    record_load(run, 0.25)
    assert "was 0.2 when it started and 2.5 when it ended" in run_load_sentence([run])
    record_load(run, 4.0)  # a resumed pass
    s = run_load_sentence([run])
    assert "from 0.2 to 4.0" in s and "passes" in s


def test_a_benchmarks_own_outputs_do_not_mark_the_commit_dirty(tmp_path, monkeypatch):
    import subprocess

    import bench.report as report

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    for name in ("BENCHMARKS.md", "bench_x.png", "code.py"):
        (tmp_path / name).write_text("0\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "0")
    monkeypatch.setattr(report, "BENCHMARKS", tmp_path / "BENCHMARKS.md")
    (tmp_path / "BENCHMARKS.md").write_text("1\n")
    (tmp_path / "bench_x.png").write_text("1\n")  # a plot is written before the section's stamp
    assert "+dirty" not in report.provenance("x")
    (tmp_path / "code.py").write_text("1\n")
    assert "+dirty" in report.provenance("x")
