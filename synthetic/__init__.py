"""synthetic: synthetic replicas of the linked datasets, evaluated for fidelity and privacy (SDV behind one adapter)."""
