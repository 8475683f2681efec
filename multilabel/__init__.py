"""Multi-label classification with meta-learned per-label training weights and decision thresholds
(Wu, Xiong and Wang, EMNLP 2019), with the threshold-tuning and loss baselines; see docs/multilabel.md."""
