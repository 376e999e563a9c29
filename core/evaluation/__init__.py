"""Evaluation: runs over a scenario's questions, metrics, saved runs and their comparison, the decision summary, the judge, the blind arena and its leaderboard."""
