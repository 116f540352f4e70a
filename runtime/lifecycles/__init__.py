"""The lifecycles: state machines over stored requests, and the sync and usage monitors that
move requests through them."""
