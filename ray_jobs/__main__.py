"""`python -m ray_jobs` lists the jobs; each runs as `python -m ray_jobs.<job> --config ...`."""

from __future__ import annotations

import importlib
import sys

JOBS = {
    "spry": "federated fine-tuning with forward gradients and split weights (Spry)",
    "curate": "hierarchical k-means curation and balanced sampling of a text pool",
    "compress": "application-specific low-rank compression (Basel) against SVD baselines",
    "refusion": "few-shot classification with retrieval representation fusion (ReFusion)",
    "unitable": "table recognition from pixels as language modelling, self-supervised pretraining (UniTable)",
}


def main() -> int:
    from ray_jobs.cli import CONFIG_DIRS

    print("tailor jobs (python -m ray_jobs.<job> --config <config> [--set key=value]):\n")
    for job, what in JOBS.items():
        try:
            importlib.import_module(f"ray_jobs.{job}")
            status = ""
        except ImportError as err:  # a job whose optional dependency is missing still gets listed
            status = f"  (cannot import: {err})"
        print(f"  {job:<10} {what}{status}\n  {'':<10} python -m ray_jobs.{job} --config configs/{CONFIG_DIRS.get(job, job)}/laptop.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
