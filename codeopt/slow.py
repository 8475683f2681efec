"""Correct but deliberately slow rewrites of HumanEval canonical solutions, written by hand: the start
of the benchmark's second arm, where the LLM optimises known-correct code with and without profiles.

Each body replaces the canonical body after the task's prompt. The rule behind each is named:
`no early exit` (scan everything, then decide), `recursion without memo`, `repeated string/list
concatenation` (a new object every step), `list membership in a loop`, `recompute in a loop`.
Every rewrite is checked against the task's own tests before use; one that fails is excluded.
"""

from __future__ import annotations

from codeopt.tasks import Task

SLOW_BODIES: dict[str, tuple[str, str]] = {
    "HumanEval/13": ("no early exit", """\
    common = [d for d in range(1, max(a, b) + 1) if a % d == 0 and b % d == 0]
    return max(common)
"""),
    "HumanEval/24": ("no early exit", """\
    divisors = [i for i in range(1, n) if n % i == 0]
    return sorted(divisors)[-1]
"""),
    "HumanEval/31": ("no early exit", """\
    divisors = [k for k in range(1, n + 1) if n % k == 0]
    return len(divisors) == 2
"""),
    "HumanEval/36": ("repeated string concatenation", """\
    s = ''
    for i in range(n):
        if i % 11 == 0 or i % 13 == 0:
            s = str(i) + s
    count = 0
    for c in s:
        if c == '7':
            count = count + 1
    return count
"""),
    "HumanEval/46": ("recursion without memo", """\
    if n < 4:
        return [0, 0, 2, 0][n]
    return fib4(n - 1) + fib4(n - 2) + fib4(n - 3) + fib4(n - 4)
"""),
    "HumanEval/49": ("recompute in a loop", """\
    ret = 1
    for i in range(n):
        ret = pow(2, i + 1) % p
    return ret
"""),
    "HumanEval/59": ("no early exit", """\
    def is_prime(k):
        return k >= 2 and len([i for i in range(2, k) if k % i == 0]) == 0
    factors = [j for j in range(2, n + 1) if n % j == 0]
    return max(j for j in factors if is_prime(j))
"""),
    "HumanEval/60": ("recompute in a loop", """\
    total = 0
    for i in range(n + 1):
        total = total + sum([1 for _ in range(i)])
    return total
"""),
    "HumanEval/96": ("list membership in a loop", """\
    primes = []
    for i in range(2, n):
        divisors = [j for j in range(2, i) if i % j == 0]
        if len(divisors) == 0 and i not in primes:
            primes = primes + [i]
    return primes
"""),
    "HumanEval/130": ("recursion without memo", """\
    def t(i):
        if i == 0:
            return 1
        if i == 1:
            return 3
        if i % 2 == 0:
            return i / 2 + 1
        return t(i - 1) + t(i - 2) + (i + 3) / 2
    return [t(i) for i in range(n + 1)]
"""),
}


def slow_solution(task: Task) -> str | None:
    """The slow rewrite of `task`'s canonical solution, or None when the set has none for it."""
    entry = SLOW_BODIES.get(task.task_id)
    return None if entry is None else task.prompt + entry[1]


def slow_rule(task_id: str) -> str:
    return SLOW_BODIES[task_id][0]
