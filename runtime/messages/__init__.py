"""What generated code imports at run time: codecs, lexical forms, the model base, the contract
registry, hardened parsing, mapping support and its functions, the message header.

It imports nothing else of the runtime, so generated packages depend on this package alone."""
