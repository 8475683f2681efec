"""Which next-token calls the llamacpp backend's scoring makes: one per distinct context, however
many labels share it (the server itself is tested in test_llamacpp.py)."""

from core.llm.llamacpp import plan_contexts


def test_labels_sharing_a_prompt_and_leading_tokens_share_their_calls():
    prompt = [1, 2, 3]
    rows = [(prompt, [7]), (prompt, [8]),  # "A" / "B": one context
            (prompt, [5, 6, 9]), (prompt, [5, 4, 6, 9]),  # share their first token
            ([1, 2], [3, 7])]  # a different prompt that runs into the first one's context
    plan = plan_contexts(rows)
    assert plan == {
        (1, 2): [3],
        (1, 2, 3): [7, 8, 5],
        (1, 2, 3, 5): [6, 4],
        (1, 2, 3, 5, 4): [6],
        (1, 2, 3, 5, 4, 6): [9],
        (1, 2, 3, 5, 6): [9],
    }
    # every token of every row is asked for exactly where it is scored
    for p, c in rows:
        assert all(c[t] in plan[tuple(p) + tuple(c[:t])] for t in range(len(c)))
    assert len(plan) < sum(len(c) for _, c in rows)


def test_a_repeated_row_is_asked_once():
    assert plan_contexts([([4], [1, 2]), ([4], [1, 2])]) == {(4,): [1], (4, 1): [2]}
