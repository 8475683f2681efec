"""specialize: a recipe of stages, each an existing job's library code, chained by typed artifacts."""
