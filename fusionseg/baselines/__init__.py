"""The paper's motion-only baselines: Flow-Th (flow magnitude threshold) and Flow-Sal (flow saliency)."""
