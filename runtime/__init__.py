"""The runtime: hardened input, the contract codecs' support, and (later) delivery and lifecycles."""
