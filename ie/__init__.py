"""Zero-shot information extraction by chatting with an LLM (ChatIE, Wei et al. 2023): schemas,
the two-stage chat and its single-turn baseline, robust answer parsers, scoring, and the run."""
