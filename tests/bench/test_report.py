"""bench.report: a section is replaced by name and stamped with date, commit, machine and command."""

import re

from bench.report import write_section


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
