"""Publish: the curated collection as a FiftyOne dataset with saved views; `curate app` opens it."""
