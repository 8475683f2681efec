from hypothesis import given, settings
from hypothesis import strategies as st

from fl.split import assign_chunks, group_tensors, module_key


@settings(max_examples=300, deadline=None)
@given(chunks=st.integers(1, 60), clients=st.integers(1, 60), rnd=st.integers(0, 10_000))
def test_assignment_never_fails_and_covers_everything(chunks, clients, rnd):
    out = assign_chunks(chunks, clients, rnd)
    assert len(out) == clients
    assert all(len(c) >= 1 for c in out)  # no client idles
    assert all(0 <= i < chunks for c in out for i in c)
    if clients <= chunks:
        # every chunk trained by exactly one client: the split is a partition
        flat = sorted(i for c in out for i in c)
        assert flat == list(range(chunks))
    else:
        # fewer chunks than clients (the reference's KeyError case): all chunks still covered
        assert {i for c in out for i in c} == set(range(chunks))
        counts = [sum(i in c for c in out) for i in range(chunks)]
        assert max(counts) - min(counts) <= 1  # shared as evenly as possible


def test_assignment_rotates_with_the_round():
    assert assign_chunks(13, 5, 0) != assign_chunks(13, 5, 1)


LORA = [
    f"backbone.base_model.model.encoder.layer.{i}.attention.self.{m}.lora_{ab}.default.weight"
    for i in range(2) for m in ("query", "value") for ab in "AB"
] + ["head.weight", "head.bias"]


def test_lora_pairs_and_head_form_chunks():
    chunks = group_tensors(LORA, 2)
    assert len(chunks) == 5
    for c in chunks:
        assert len({module_key(n) for n in c}) == 1  # A and B of one module stay together
    assert chunks[-1] == ["head.weight", "head.bias"]


def test_larger_chunks_and_single_tensors():
    assert [len(c) for c in group_tensors(LORA, 4)] == [4, 4, 2]
    assert len(group_tensors(LORA, 1)) == len(LORA)
    bitfit = [f"l{i}.bias" for i in range(5)]
    # One tensor per module: chunks of per_client_layer_count consecutive tensors, the last one short.
    assert group_tensors(bitfit, 2) == [["l0.bias", "l1.bias"], ["l2.bias", "l3.bias"], ["l4.bias"]]
    assert group_tensors(bitfit, 1) == [[n] for n in bitfit]
    # A module larger than a chunk is cut on its own, never mixed with its neighbours' tensors.
    three = ["a.x.weight", "m.lora_A.default.weight", "m.lora_B.default.weight", "m.lora_A.other.weight", "z.bias"]
    assert module_key(three[1]) == module_key(three[3]) == "m"
    assert group_tensors(three, 2) == [["a.x.weight"], three[1:3], [three[3]], ["z.bias"]]
