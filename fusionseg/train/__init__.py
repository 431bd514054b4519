"""Training the two streams and the fusion layer (resumable, logged, deterministic on the CPU)."""
