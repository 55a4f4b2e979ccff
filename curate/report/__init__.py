"""Report: OUT/report/index.html with PNG plots of the class distribution, issues, duplicates and weights."""
