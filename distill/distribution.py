"""How generated data spreads in an embedding space: distance from the seed examples' centroid, and
coverage of the real data (the method spec's two measures for GOLD against ZeroGen)."""

from __future__ import annotations

import torch


def centroid_distance(samples: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean Euclidean distance of the sample embeddings (n, d) from the centroid of reference (m, d)."""
    if samples.numel() == 0 or reference.numel() == 0:
        raise ValueError("centroid_distance needs at least one sample and one reference embedding")
    centroid = reference.double().mean(0, keepdim=True)
    return float((samples.double() - centroid).norm(dim=-1).mean())


def nearest_distance(queries: torch.Tensor, points: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """For each query (n, d), the Euclidean distance to its nearest point (m, d); chunked so the
    n x m matrix never exists whole."""
    if points.numel() == 0:
        raise ValueError("nearest_distance needs at least one point")
    p = points.double()
    out = [torch.cdist(queries[lo:lo + chunk].double(), p).min(-1).values for lo in range(0, len(queries), chunk)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def coverage(real: torch.Tensor, generated: torch.Tensor, radius: float) -> float:
    """The fraction of real items whose nearest generated neighbour lies within `radius`."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if real.numel() == 0:
        raise ValueError("coverage needs at least one real item")
    return float((nearest_distance(real, generated) <= radius).double().mean())
