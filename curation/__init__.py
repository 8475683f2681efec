"""Data curation: hierarchical k-means with resampling and balanced hierarchical sampling (Vo et al. 2024)."""
