"""The conformance suite: golden cases of every flow and their runner."""
