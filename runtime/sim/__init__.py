"""The reference simulators of CCB and MDM: how every flow runs end to end without the real
systems, and what the demo runs."""
