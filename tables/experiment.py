"""The UniTable job's method: render data, train the tokenizer, pretrain the encoder by masked
modelling, fine-tune structure+boxes from the pretrained encoder and from scratch at the same
budget, train the content reader, evaluate both (and rapid_table) on held-out synthetic tables
and PubTabNet. Every stage's time and result go to metrics.jsonl."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from core.runs import RunDir
from core.seeding import derive_seed
from tables.boxes import average_precision_50
from tables.config import UniTableJobConfig
from tables.data import content_rows, prepare, render_tables, seq2seq_rows
from tables.model import EncoderDecoder, ModelConfig, greedy_decode
from tables.pipeline import Recognizer
from tables.ray_train import train_on_ray
from tables.structure import to_html
from tables.teds import teds, teds_struct
from tables.train import build_model, dvae_codes, run_training, train_dvae
from tables.vocab import BOS_STRUCT, CharVocab, TableVocab

log = logging.getLogger("tailor.tables")


class Stopwatch:
    def __init__(self, run: RunDir):
        self.run, self.times = run, {}

    def __call__(self, stage: str, t0: float, **extra) -> None:
        dt = time.perf_counter() - t0
        self.times[stage] = dt
        log.info("%s: %.1f s", stage, dt)
        self.run.log_metrics({"stage": stage, "seconds": dt, **extra})


def table_spec(job: UniTableJobConfig, name: str, vocab: TableVocab, index, tokens, images, encoder_state=None) -> dict:
    f = job.finetune
    return {"kind": "seq2seq", "name": name, "seed": job.seed, "model": asdict(job.model),
            "height": job.data.image_size, "width": job.data.image_size, "vocab_size": vocab.size,
            "max_len": max(f.max_structure_len, f.max_box_len), "encoder_state": encoder_state,
            "coords": (vocab.coord_offset, vocab.size),
            "data": {"images": images, "tokens": tokens, "index": index},
            "hp": {"epochs": f.epochs, "batch_size": f.batch_size, "lr": f.lr, "weight_decay": f.weight_decay,
                   "warmup_steps": f.warmup_steps, "freeze_encoder_epochs": f.freeze_encoder_epochs}}


def mim_spec(job: UniTableJobConfig, images, codes) -> dict:
    p, S = job.pretrain, job.data.image_size
    grid = (S // job.model.patch) ** 2
    return {"kind": "mim", "name": "pretrain", "seed": job.seed, "model": asdict(job.model), "height": S,
            "codebook": job.tokenizer.codebook, "data": {"images": images, "codes": codes},
            "hp": {"epochs": p.epochs, "batch_size": p.batch_size, "lr": p.lr, "weight_decay": p.weight_decay,
                   "warmup_steps": p.warmup_steps, "num_masked": int(p.mask_ratio * grid), "min_block": p.min_block,
                   "min_aspect": p.min_aspect}}


def content_spec(job: UniTableJobConfig, chars: CharVocab, crops, tokens) -> dict:
    c = job.content
    return {"kind": "seq2seq", "name": "content", "seed": job.seed, "model": asdict(c.model), "height": c.height,
            "width": c.width, "vocab_size": chars.size, "max_len": c.max_len,
            "data": {"images": crops, "tokens": tokens},
            "hp": {"epochs": c.epochs, "batch_size": c.batch_size, "lr": c.lr, "weight_decay": c.weight_decay,
                   "warmup_steps": c.warmup_steps, "freeze_encoder_epochs": 0}}


def load_model(spec: dict, state: dict, device: str) -> torch.nn.Module:
    model = EncoderDecoder(ModelConfig(**spec["model"]), spec["height"], spec["width"], spec["vocab_size"],
                           spec["max_len"])
    model.load_state_dict(state)
    return model.to(device).eval()


def score(records: list[dict], truths: list[str], boxes_true: list | None = None) -> dict:
    ts = [teds(r["html"], g) for r, g in zip(records, truths)]
    ss = [teds_struct(r["html"], g) for r, g in zip(records, truths)]
    out = {"teds": float(np.mean(ts)), "teds_struct": float(np.mean(ss)), "tables": len(records),
           "seconds_per_table": float(np.mean([r["seconds"] for r in records])), "per_table_teds_struct": ss}
    if boxes_true is not None and records and "raw_boxes" in records[0]:
        out["box_ap50"] = average_precision_50([r["raw_boxes"] for r in records], boxes_true)
        out["box_ap50_aligned"] = average_precision_50([[(b, 1.0) for b in r["boxes"]] for r in records], boxes_true)
        out["cell_count_mismatch"] = float(np.mean([r["align"]["cells"] != r["align"]["boxes"] for r in records]))
    return out


def kv_cache_benchmark(model: EncoderDecoder, vocab: TableVocab, images: np.ndarray, tokens: int, batch: int) -> dict:
    """Greedy structure decoding of `tokens` tokens (EOS disallowed), with and without the cache."""
    x = torch.from_numpy(images[:batch])
    mask = vocab.allowed_mask("structure")
    res = {}
    for use_cache in (True, False):
        t0 = time.perf_counter()
        out, _ = greedy_decode(model, x, BOS_STRUCT, mask, tokens, use_cache=use_cache, stop_at_eos=False)
        res["cached" if use_cache else "uncached"] = (time.perf_counter() - t0, out)
    same = bool(torch.equal(res["cached"][1], res["uncached"][1]))
    return {"tokens": int(res["cached"][1].shape[1]), "batch": int(x.shape[0]), "cached_s": res["cached"][0],
            "uncached_s": res["uncached"][0], "speedup": res["uncached"][0] / res["cached"][0], "identical": same}


def _train(job: UniTableJobConfig, spec: dict, storage: Path, name: str) -> dict:
    if job.use_ray:
        return train_on_ray(spec, job.train, storage, name, job.threads)
    model = build_model(spec).to(job.device)
    history = run_training(spec, model, device=job.device)
    return {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "history": history}


def run_unitable(job: UniTableJobConfig, run: RunDir, storage: Path) -> dict:
    """The whole experiment; returns what the summary needs."""
    torch.set_num_threads(max(1, job.threads))
    use_ray_data = job.use_ray
    watch = Stopwatch(run)
    S = job.data.image_size
    vocab, chars = TableVocab(S), CharVocab()
    bad: list[tuple[str, str]] = []
    # 1. data
    t0 = time.perf_counter()
    unlabelled = render_tables(job.data.unlabelled, job.data.render, job.seed, "unlabelled", use_ray_data,
                               job.data.render_blocks, image_size=S)
    train_tables = render_tables(job.data.labelled, job.data.render, job.seed, "train", use_ray_data,
                                 job.data.render_blocks)
    test_tables = render_tables(job.data.test, job.data.render, job.seed, "test", use_ray_data, job.data.render_blocks)
    train = prepare(train_tables, S, bad)
    test = prepare(test_tables, S, bad)
    index, tokens = seq2seq_rows(train, vocab, max(job.finetune.max_structure_len, job.finetune.max_box_len))
    watch("render", t0, unlabelled=len(unlabelled), labelled=len(train.tables), test=len(test.tables))
    pub = None
    if job.data.pubtabnet_path:
        from tables.pubtabnet import load_pubtabnet

        examples = load_pubtabnet(job.data.pubtabnet_path, job.data.pubtabnet_split, job.data.pubtabnet_limit, bad)
        pub = (prepare([e.table for e in examples], S, bad), [e.html for e in examples])
    for name, why in bad:
        log.warning("skipped %s: %s", name, why)
        run.log_metrics({"skipped": name, "reason": why})
    # 2. tokenizer and masked image modelling
    encoder_state = None
    if job.data.unlabelled:
        tk = job.tokenizer
        t0 = time.perf_counter()
        dvae, hist = train_dvae(unlabelled[:tk.images], tk.codebook, tk.hidden, job.model.patch, tk.epochs,
                                tk.batch_size, tk.lr, (tk.tau_start, tk.tau_end), tk.kl_weight, job.seed, job.device)
        codes = dvae_codes(dvae, unlabelled, device=job.device)
        _, counts = np.unique(codes, return_counts=True)
        # perplexity of the code distribution: how many codes masked modelling effectively has to tell
        # apart (a collapsed tokenizer sits near 1 whatever its codebook size)
        share = counts / counts.sum()
        watch("tokenizer", t0, loss=hist[-1]["loss"], codes_used=len(counts), codebook=tk.codebook,
              code_perplexity=float(np.exp(-(share * np.log(share)).sum())))
        t0 = time.perf_counter()
        pre = _train(job, mim_spec(job, unlabelled, codes), storage, "pretrain")
        encoder_state = {k[len("encoder."):]: v for k, v in pre["model"].items() if k.startswith("encoder.")}
        watch("pretrain", t0, history=pre["history"])
    # 3./4. fine-tune from the pretrained encoder and from scratch, same data and budget
    arms = {}
    for arm, enc in (("pretrained", encoder_state), ("scratch", None)):
        if arm == "pretrained" and enc is None:
            continue
        t0 = time.perf_counter()
        spec = table_spec(job, f"finetune-{arm}", vocab, index, tokens, train.images, enc)
        res = _train(job, spec, storage, f"finetune-{arm}")
        arms[arm] = (spec, res["model"])
        watch(f"finetune-{arm}", t0, history=res["history"])
    content_model = None
    if job.content.enabled:
        t0 = time.perf_counter()
        c = job.content
        crops, ctoks = content_rows(train.tables, chars, c.height, c.width, c.max_len, c.crops, job.seed)
        cspec = content_spec(job, chars, crops, ctoks)
        res = _train(job, cspec, storage, "content")
        content_model = load_model(cspec, res["model"], job.device)
        watch("content", t0, crops=len(crops), history=res["history"])
    # 5. evaluation
    results: dict[str, dict] = {}
    preds: dict[str, dict] = {}
    f = job.finetune
    test_truth = [to_html(t.tokens, t.texts) for t in test.tables]
    for arm, (spec, state) in arms.items():
        t0 = time.perf_counter()
        rec = Recognizer(load_model(spec, state, job.device), vocab, f.max_structure_len, f.max_box_len,
                         content_model, chars if content_model else None, job.content.height, job.content.width,
                         job.content.max_len, job.eval.batch_size, job.device)
        out = rec.recognize(test)
        preds[arm] = {"synthetic": out}
        results[arm] = {"synthetic": score(out, test_truth, [t.boxes for t in test.tables])}
        if pub is not None and pub[0].tables:
            pout = rec.recognize(pub[0])
            preds[arm]["pubtabnet"] = pout
            results[arm]["pubtabnet"] = score(pout, pub[1], [t.boxes for t in pub[0].tables])
        watch(f"evaluate-{arm}", t0, **{k: {m: v for m, v in r.items() if not m.startswith("per_table")}
                                         for k, r in results[arm].items()})
    if job.eval.peer:
        from tables.peer import rapid_table_available, run_rapid_table

        if rapid_table_available():
            t0 = time.perf_counter()
            n = min(job.eval.peer_synthetic, len(test.tables))
            out = run_rapid_table(test.tables[:n])
            results["rapid_table"] = {"synthetic": score(out, test_truth[:n])}
            preds["rapid_table"] = {"synthetic": out}
            if pub is not None and pub[0].tables:
                pout = run_rapid_table(pub[0].tables)
                results["rapid_table"]["pubtabnet"] = score(pout, pub[1])
                preds["rapid_table"]["pubtabnet"] = pout
            # our arms on the very tables the peer read, for a like-for-like row
            for arm in arms:
                sub = preds[arm]["synthetic"][:n]
                results[arm]["synthetic_peer_subset"] = score(sub, test_truth[:n])
            watch("evaluate-rapid_table", t0, **{k: {m: v for m, v in r.items() if not m.startswith("per_table")}
                                                  for k, r in results["rapid_table"].items()})
        else:
            log.warning("rapid_table / rapidocr_onnxruntime not installed: no peer row")
    kv = None
    if arms and job.eval.kv_benchmark_tokens:
        t0 = time.perf_counter()
        spec, state = next(iter(arms.values()))
        bench_spec = dict(spec, max_len=max(spec["max_len"], job.eval.kv_benchmark_tokens))
        model = EncoderDecoder(ModelConfig(**spec["model"]), S, S, vocab.size, bench_spec["max_len"])
        # the trained weights, with the position table extended (new rows untrained) to reach 512 tokens
        own = model.state_dict()
        for k, v in state.items():
            if k == "decoder.pos":
                own[k][:, :v.shape[1]] = v
            else:
                own[k] = v
        model.load_state_dict(own)
        kv = kv_cache_benchmark(model.eval(), vocab, test.images, job.eval.kv_benchmark_tokens,
                                job.eval.kv_benchmark_batch)
        watch("kv-cache-benchmark", t0, **kv)
    return {"results": results, "preds": preds, "test": test, "pub": pub, "times": watch.times, "kv": kv,
            "bad": bad, "seed": derive_seed(job.seed, "report")}


__all__ = ["kv_cache_benchmark", "run_unitable", "score"]
