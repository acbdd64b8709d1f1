"""Recipes: what makes the shipped checkpoints and records (make-teacher, make-student, compare, cards, ablate + claims,
gpu-check)."""
