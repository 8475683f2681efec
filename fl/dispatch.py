"""Message dispatch for Flower's simulation engine in one pass over the message store.

Flower 1.42's simulation thread (`vce_api.add_messages_to_queue`) asks the link state for the
messages of every registered node, one `get_message_ins` per node every 0.1 s, and each call
scans the whole store (with an expiry and federation check per message). So each tick costs
nodes x messages checks in the driver process: with 1,000 clients that exist and 1,000 queries
in flight (round 0), a tick takes seconds and competes with the round for the cores; in the
training rounds it still grows with the clients that exist, not with the clients in flight
(BENCHMARKS.md, `fl_scale`).

`dispatch_undelivered` checks the store once per tick and hands each node at most one message,
as Flower's loop does (limit=1 per node and tick), marking it delivered under the state's lock.
`install` swaps it into `vce_api` for the in-process simulation (`fl.app.run_spry`). It only
touches an `InMemoryLinkState` (the simulation's); any other state goes through Flower's own
per-node query.
"""

from __future__ import annotations

import logging
import threading
from queue import Queue

log = logging.getLogger(__name__)

_ORIGINAL = None  # Flower's own loop once install() ran: kept for states the single pass does not know


def dispatch_undelivered(state, nodes: set[int]) -> list:
    """Undelivered messages for `nodes`, at most one per node, in store order; each is marked
    delivered, as `get_message_ins` marks it."""
    from flwr.supercore.date import now

    with state.lock:
        ids = list(state.message_ins_store)
        state._check_stored_messages(set(ids))  # deletes expired messages and foreign ones
        picked: dict[int, object] = {}
        for msg_id in ids:
            msg = state.message_ins_store.get(msg_id)
            if msg is None:
                continue
            dst = msg.metadata.dst_node_id
            if dst in nodes and dst not in picked and msg.metadata.delivered_at == "":
                picked[dst] = msg
        delivered_at = now().isoformat()
        for msg in picked.values():
            msg.metadata.delivered_at = delivered_at
    return list(picked.values())


def add_messages_to_queue(state, queue: Queue, nodes_mapping: dict, f_stop: threading.Event) -> None:
    """Drop-in for `vce_api.add_messages_to_queue`: the same loop and tick, one store pass per tick."""
    from flwr.server.superlink.linkstate import InMemoryLinkState

    if not isinstance(state, InMemoryLinkState):
        return _ORIGINAL(state, queue, nodes_mapping, f_stop)
    nodes = set(nodes_mapping)
    while not f_stop.is_set():
        for msg in dispatch_undelivered(state, nodes):
            queue.put(msg)
        f_stop.wait(0.1)


def install() -> None:
    """Route Flower's simulation dispatch through `add_messages_to_queue` (idempotent)."""
    global _ORIGINAL
    if _ORIGINAL is not None:
        return
    from flwr.server.superlink.fleet.vce import vce_api
    from flwr.server.superlink.linkstate import InMemoryLinkState

    # The single pass reads the in-memory state's store, lock and check; if a Flower release
    # renames them, keep Flower's own loop rather than fail the run.
    needed = ("message_ins_store", "lock", "_check_stored_messages")
    probe = InMemoryLinkState.__init__.__code__.co_names + tuple(vars(InMemoryLinkState))
    if not all(name in probe for name in needed) or not hasattr(vce_api, "add_messages_to_queue"):
        log.warning("Flower's simulation dispatch has changed shape; keeping its per-node loop")
        return
    _ORIGINAL = vce_api.add_messages_to_queue
    vce_api.add_messages_to_queue = add_messages_to_queue
