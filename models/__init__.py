"""The models: the fused two-tower model, its LightGBM re-ranker, baselines, evaluation and top-N."""
