"""disclosure: statistical disclosure control and differential privacy, as pure computation."""
