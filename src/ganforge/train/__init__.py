"""Training: `step` holds the seeds' game (who learns when), `trainer` the loop around it."""
