"""fl.dispatch against Flower's own per-node query, on Flower's real in-memory link state."""

from __future__ import annotations

import threading
from queue import Queue

import pytest
from flwr.app import Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.proto.task_pb2 import Task  # pylint: disable=E0611
from flwr.server.superlink.fleet.vce import vce_api
from flwr.server.superlink.linkstate import LinkStateFactory
from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.superlink.federation import NoOpFederationManager
from flwr.superlink.grid import InMemoryGrid

from fl import dispatch


@pytest.fixture(autouse=True)
def _server_identity(monkeypatch):
    """Messages take their run id from the process's task identity, which run_simulation sets;
    set it as it does for this test only."""
    for name, value in (("_task_id", 1), ("_run_id", 7), ("_node_id", SUPERLINK_NODE_ID)):
        monkeypatch.setattr(TaskIdentity, name, value)


def _state_with_messages(num_nodes: int, sends: list[int], ttl: float = 3600.0):
    """A link state with `num_nodes` nodes and one query pushed per entry of `sends` (node index)."""
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
    mapping = vce_api._register_nodes(num_nodes=num_nodes, state_factory=factory)
    state = factory.state()
    run = Run.create_empty(run_id=7)
    run.federation_id = NOOP_FEDERATION_ID
    run.primary_task_id = 11
    # As flwr.simulation.run_simulation pre-registers its run
    state.run_ids[run.run_id] = RunRecord(run=run)
    state.task_store[run.primary_task_id] = Task(task_id=run.primary_task_id, run_id=run.run_id)
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(run)
    node_ids = list(mapping)
    messages = [Message(RecordDict(), node_ids[i], "query", ttl=ttl, group_id=str(k)) for k, i in enumerate(sends)]
    ids = list(grid.push_messages(messages))
    assert len(ids) == len(sends)  # every message was accepted by the state
    return state, mapping


def _flower_tick(state, mapping) -> list:
    out = []
    for node_id in mapping:
        out += state.get_message_ins(node_id=node_id, limit=1)
    return out


def test_one_pass_delivers_what_flowers_per_node_loop_delivers_tick_by_tick():
    sends = [0, 3, 3, 5, 9, 9, 9, 1]  # nodes 3 and 9 hold more than one message
    ours, mapping = _state_with_messages(12, sends)
    theirs, mapping_t = _state_with_messages(12, sends)
    for _ in range(4):  # node 9 needs three ticks, as in Flower's loop
        a = dispatch.dispatch_undelivered(ours, set(mapping))
        b = _flower_tick(theirs, mapping_t)
        # node ids differ between the two states; compare by node index and message
        assert sorted((mapping[m.metadata.dst_node_id], m.metadata.group_id) for m in a) == \
            sorted((mapping_t[m.metadata.dst_node_id], m.metadata.group_id) for m in b)
        assert all(m.metadata.delivered_at for m in a)
    assert dispatch.dispatch_undelivered(ours, set(mapping)) == []


def test_first_tick_gives_each_node_its_first_message_only():
    state, mapping = _state_with_messages(4, [2, 2, 0])
    first = dispatch.dispatch_undelivered(state, set(mapping))
    index = mapping
    assert sorted((index[m.metadata.dst_node_id], m.metadata.group_id) for m in first) == [(0, "2"), (2, "0")]
    second = dispatch.dispatch_undelivered(state, set(mapping))
    assert [(index[m.metadata.dst_node_id], m.metadata.group_id) for m in second] == [(2, "1")]


def test_messages_for_other_nodes_and_expired_messages_are_not_dispatched(monkeypatch):
    state, mapping = _state_with_messages(3, [0, 1, 2])
    nodes = list(mapping)
    assert {m.metadata.dst_node_id for m in dispatch.dispatch_undelivered(state, {nodes[1]})} == {nodes[1]}

    state, mapping = _state_with_messages(2, [0, 1], ttl=30.0)
    import flwr.server.superlink.linkstate.in_memory_linkstate as ims

    real_now = ims.now
    monkeypatch.setattr(ims, "now", lambda: real_now() + __import__("datetime").timedelta(seconds=60))
    assert dispatch.dispatch_undelivered(state, set(mapping)) == []
    assert state.num_message_ins() == 0  # expired, so deleted as Flower's check deletes them


def test_install_swaps_flowers_loop_once_and_the_loop_feeds_the_queue():
    dispatch.install()
    dispatch.install()
    assert vce_api.add_messages_to_queue is dispatch.add_messages_to_queue
    assert dispatch._ORIGINAL is not dispatch.add_messages_to_queue

    state, mapping = _state_with_messages(3, [0, 1, 1])
    queue: Queue = Queue()
    stop = threading.Event()
    thread = threading.Thread(target=vce_api.add_messages_to_queue, args=(state, queue, mapping, stop))
    thread.start()
    got = [queue.get(timeout=30) for _ in range(3)]
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert sorted(m.metadata.group_id for m in got) == ["0", "1", "2"]
    assert queue.empty()


def test_a_state_other_than_the_in_memory_one_goes_through_flowers_loop(monkeypatch):
    dispatch.install()
    calls = []
    monkeypatch.setattr(dispatch, "_ORIGINAL", lambda *a: calls.append(a))
    stop = threading.Event()
    dispatch.add_messages_to_queue(object(), Queue(), {1: 0}, stop)
    assert len(calls) == 1
