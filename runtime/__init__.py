"""The runtime: hardened input and the support of the generated codecs."""
