"""Lab 4: robustness — out-of-distribution detection and adversarial attacks."""
