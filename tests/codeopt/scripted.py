"""A TEST INSTRUMENT, never the product: a scripted 'LLM' that answers SOAP's prompts from a script,
so the loop's mechanics (prompting, acceptance, caching) can be checked without a real model."""

from __future__ import annotations


class ScriptedBackend:
    """Replies by rule: `with_profile(prompt, k)` when the prompt carries a line-level profile,
    else `without_profile(prompt, k)`, where k counts the calls for that kind of prompt."""

    name = "scripted"

    def __init__(self, with_profile, without_profile, generate_first=None):
        self.with_profile, self.without_profile = with_profile, without_profile
        self.generate_first = generate_first
        self.prompts: list[str] = []

    def generate(self, prompts, params, seeds):
        out = []
        for p in prompts:
            text = p[-1]["content"]
            self.prompts.append(text)
            if "Current code:" not in text:
                out.append(self.generate_first(text))
            elif "Line-level time profile" in text:
                out.append(self.with_profile(text))
            else:
                out.append(self.without_profile(text))
        return out

    def score(self, prompts, continuations):
        raise NotImplementedError

    def check(self):
        pass


class Refuses:
    """Any call fails the test: proves a resumed run asked the model nothing."""

    name = "refuses"

    def generate(self, prompts, params, seeds):
        raise AssertionError(f"the model was called for {len(prompts)} prompts")
