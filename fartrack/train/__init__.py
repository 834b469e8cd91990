"""Training: losses (:mod:`.losses`), per-stage batch logic (:mod:`.stages`), the stage-3 rollout
(:mod:`.rollout`), and the trainer that drives them (optimiser, DDP, checkpoints, logging)."""
