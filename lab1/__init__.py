"""Lab 1: residual connections and explainability."""
