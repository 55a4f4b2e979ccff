"""Rebalance and split: which images go into which split, how many times, with what weight."""
