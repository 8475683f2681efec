"""Spry's weight split: group the trainable tensors into chunks and hand chunks to clients."""

from __future__ import annotations

import re

_ADAPTER_SUFFIX = re.compile(r"\.(lora_[AB]|lora_embedding_[AB]|ia3_l)(\.[^.]+)?\.weight$")


def module_key(name: str) -> str:
    """The module a tensor adapts: 'x.query.lora_A.default.weight' and its lora_B share 'x.query'."""
    m = _ADAPTER_SUFFIX.search(name)
    if m:
        return name[: m.start()]
    return name.rsplit(".", 1)[0]


def group_tensors(names: list[str], per_client_layer_count: int = 2) -> list[list[str]]:
    """Cut tensors, in named_parameters order, into chunks of `per_client_layer_count` tensors.

    The default of 2 keeps one LoRA A/B pair (or a head's weight and bias) together: A and B
    only make sense as a pair. Chunks never straddle two modules' tensors when a module's
    tensors fit in one chunk.
    """
    if per_client_layer_count < 1:
        raise ValueError("per_client_layer_count must be >= 1")
    # Keep each module's tensors contiguous, then cut.
    modules: list[list[str]] = []
    for n in names:
        if modules and module_key(modules[-1][-1]) == module_key(n):
            modules[-1].append(n)
        else:
            modules.append([n])
    chunks: list[list[str]] = []
    current: list[str] = []
    for mod in modules:
        if len(mod) > per_client_layer_count:  # a module larger than a chunk is cut on its own
            if current:
                chunks.append(current)
                current = []
            for i in range(0, len(mod), per_client_layer_count):
                chunks.append(mod[i : i + per_client_layer_count])
            continue
        if len(current) + len(mod) > per_client_layer_count:
            chunks.append(current)
            current = []
        current.extend(mod)
    if current:
        chunks.append(current)
    return chunks


def assign_chunks(num_chunks: int, num_clients: int, server_round: int = 0) -> list[list[int]]:
    """Chunk indices for each of the round's clients (by position in the sampled list).

    Round-robin over max(chunks, clients) slots, shifted by the round so that a client
    position does not keep the same chunk every round. Every client gets at least one
    chunk and every chunk goes to at least one client, for any sizes:
    - more chunks than clients: a client trains several;
    - fewer chunks than clients: several clients train the same chunk and are averaged.
    """
    if num_chunks < 1 or num_clients < 1:
        raise ValueError(f"need >= 1 chunk and >= 1 client, got {num_chunks} chunks, {num_clients} clients")
    out: list[list[int]] = [[] for _ in range(num_clients)]
    slots = max(num_chunks, num_clients)
    for i in range(slots):
        chunk = (i + server_round) % num_chunks
        client = i % num_clients
        if chunk not in out[client]:
            out[client].append(chunk)
    return [sorted(c) for c in out]
