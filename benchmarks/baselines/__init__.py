"""Hand-written baselines the mapping benchmark measures the compiled transformer against."""
